"""The demo catalog's vocabulary: departments and their categories, brands, description and review
texts, reviewers' names. Data only; ``catalog.seed`` draws from it in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Leaf:
    name: str
    nouns: tuple[str, ...]
    median_price: float


@dataclass(frozen=True)
class Department:
    name: str
    adjectives: tuple[str, ...]
    models: tuple[str, ...]
    attributes: dict[str, tuple]
    features: tuple[str, ...]
    """Description sentences; ``{key}`` fields are filled from the product's attributes."""
    leaves: tuple[Leaf, ...]


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "Electronics",
        ("Wireless", "Portable", "Compact", "Ultra-Slim", "Noise-Cancelling", "Smart", "Rugged", "Hi-Fi"),
        ("Pro", "Max", "Mini", "Lite", "Plus", "Air", "Ultra", "SE", "X2", "300", "500", "Gen 2", ""),
        {
            "color": ("Black", "White", "Silver", "Graphite", "Navy", "Rose Gold"),
            "connectivity": ("Bluetooth 5.3", "Wi-Fi", "USB-C", "Wired", "Zigbee"),
            "warranty_months": (12, 12, 24, 36),
        },
        (
            "Connects over {connectivity} and sets up in under a minute.",
            "The {color} finish resists fingerprints and scratches.",
            "Covered by a {warranty_months}-month manufacturer warranty.",
        ),
        (
            Leaf(
                "Headphones & Audio",
                ("Headphones", "Earbuds", "Bluetooth Speaker", "Soundbar", "Turntable"),
                79,
            ),
            Leaf("Computers & Tablets", ("Laptop", "Tablet", "Chromebook", "Mini PC", "Monitor"), 449),
            Leaf(
                "Cameras & Photo", ("Mirrorless Camera", "Action Camera", "Tripod", "Camera Bag", "Lens"), 189
            ),
            Leaf(
                "Phone Accessories",
                ("Phone Case", "Wireless Charger", "Power Bank", "USB-C Cable", "Car Mount"),
                24,
            ),
            Leaf(
                "Smart Home",
                ("Smart Plug", "Video Doorbell", "Smart Bulb", "Security Camera", "Thermostat"),
                49,
            ),
        ),
    ),
    Department(
        "Home & Kitchen",
        ("Nonstick", "Everyday", "Heavy-Duty", "Modern", "Classic", "Stackable", "Premium", "Farmhouse"),
        ("Classic", "Essential", "Signature", "Deluxe", "2-Pack", "Set of 4", "12-Inch", "Large", ""),
        {
            "color": ("Charcoal", "Ivory", "Sage", "Terracotta", "Slate Blue", "Natural"),
            "material": ("Stainless Steel", "Cast Iron", "Ceramic", "Bamboo", "Cotton", "Glass"),
            "care": ("Dishwasher Safe", "Hand Wash", "Machine Washable", "Wipe Clean"),
        },
        (
            "Made from {material} that holds up to daily use.",
            "Care is simple: {care}.",
            "The {color} color works in almost any kitchen or living space.",
        ),
        (
            Leaf("Cookware", ("Skillet", "Dutch Oven", "Saucepan", "Stock Pot", "Wok", "Sheet Pan"), 45),
            Leaf(
                "Small Appliances", ("Blender", "Air Fryer", "Coffee Maker", "Toaster", "Electric Kettle"), 79
            ),
            Leaf(
                "Bedding", ("Duvet Cover", "Sheet Set", "Pillow", "Weighted Blanket", "Mattress Topper"), 59
            ),
            Leaf(
                "Storage & Organization", ("Storage Bin", "Drawer Organizer", "Shoe Rack", "Spice Rack"), 24
            ),
            Leaf("Home Decor", ("Table Lamp", "Wall Mirror", "Throw Pillow", "Vase", "Area Rug"), 39),
        ),
    ),
    Department(
        "Clothing & Shoes",
        (
            "Relaxed-Fit",
            "Slim-Fit",
            "Lightweight",
            "Waterproof",
            "Everyday",
            "Vintage",
            "Performance",
            "Cozy",
        ),
        ("Original", "Essential", "2.0", "Classic", "Heritage", "Trail", ""),
        {
            "color": ("Black", "Heather Gray", "Navy", "Olive", "Burgundy", "Camel", "White"),
            "size": ("XS", "S", "M", "M", "L", "L", "XL", "XXL"),
            "material": ("Organic Cotton", "Merino Wool", "Linen", "Recycled Polyester", "Denim", "Leather"),
        },
        (
            "Cut from soft {material} for all-day comfort.",
            "Shown in {color}; true to size, so order your usual {size}.",
            "Holds its shape wash after wash.",
        ),
        (
            Leaf("Men's Tops", ("T-Shirt", "Oxford Shirt", "Henley", "Polo", "Hoodie", "Sweater"), 29),
            Leaf(
                "Women's Dresses", ("Wrap Dress", "Maxi Dress", "Shirt Dress", "Midi Dress", "Slip Dress"), 49
            ),
            Leaf("Outerwear", ("Rain Jacket", "Puffer Jacket", "Fleece", "Parka", "Windbreaker"), 99),
            Leaf("Shoes", ("Running Shoes", "Sneakers", "Chelsea Boots", "Loafers", "Sandals"), 79),
            Leaf("Bags & Accessories", ("Backpack", "Tote Bag", "Belt", "Beanie", "Wallet", "Scarf"), 35),
        ),
    ),
    Department(
        "Sports & Outdoors",
        ("Ultralight", "All-Weather", "Packable", "Durable", "Adjustable", "Pro-Grade", "Trail-Ready"),
        ("Pro", "Trek", "Summit", "Elite", "Sport", "Expedition", ""),
        {
            "color": ("Forest Green", "Black", "Blaze Orange", "Royal Blue", "Red"),
            "weight_g": (120, 250, 480, 900, 1600, 3200),
            "material": ("Ripstop Nylon", "Neoprene", "Aluminum", "Rubber", "Polyester"),
        },
        (
            "Built from {material} and weighs just {weight_g} g.",
            "The high-visibility {color} is easy to spot outdoors.",
            "Tested in rain, mud and snow before it ever reaches you.",
        ),
        (
            Leaf(
                "Camping & Hiking",
                ("Tent", "Sleeping Bag", "Camp Stove", "Headlamp", "Hammock", "Cooler"),
                89,
            ),
            Leaf(
                "Fitness", ("Yoga Mat", "Dumbbell Set", "Resistance Bands", "Kettlebell", "Foam Roller"), 34
            ),
            Leaf("Cycling", ("Bike Helmet", "Bike Light", "Bike Lock", "Cycling Jersey", "Saddle Bag"), 49),
            Leaf("Water Sports", ("Paddle Board", "Snorkel Set", "Life Jacket", "Dry Bag", "Wetsuit"), 129),
            Leaf("Team Sports", ("Soccer Ball", "Basketball", "Baseball Glove", "Hockey Stick"), 29),
        ),
    ),
    Department(
        "Beauty & Personal Care",
        ("Hydrating", "Gentle", "Daily", "Fragrance-Free", "Nourishing", "Clarifying", "Long-Lasting"),
        ("Original", "Travel Size", "Value Pack", "Advanced", "Sensitive", ""),
        {
            "volume_ml": (15, 30, 50, 100, 200, 250),
            "skin_type": ("All", "Dry", "Oily", "Combination", "Sensitive"),
            "scent": ("Unscented", "Citrus", "Lavender", "Sandalwood", "Vanilla", "Fresh Linen"),
        },
        (
            "Skin type: {skin_type}. Dermatologist tested.",
            "Comes in a {volume_ml} ml bottle. Scent: {scent}.",
            "Free of parabens and never tested on animals.",
        ),
        (
            Leaf(
                "Skin Care", ("Moisturizer", "Serum", "Cleanser", "Sunscreen", "Eye Cream", "Face Mask"), 24
            ),
            Leaf("Hair Care", ("Shampoo", "Conditioner", "Hair Dryer", "Curling Iron", "Hair Oil"), 19),
            Leaf("Makeup", ("Lipstick", "Foundation", "Mascara", "Eyeshadow Palette", "Concealer"), 16),
            Leaf("Fragrance", ("Eau de Parfum", "Body Mist", "Cologne", "Perfume Oil"), 59),
            Leaf(
                "Shaving & Grooming", ("Electric Shaver", "Beard Trimmer", "Safety Razor", "Grooming Kit"), 34
            ),
        ),
    ),
    Department(
        "Toys & Games",
        ("Classic", "Deluxe", "Junior", "Family", "Interactive", "Glow-in-the-Dark", "Colorful"),
        ("Starter", "Deluxe Edition", "Travel Edition", "Mega", "Junior", ""),
        {
            "age_range": ("3+", "5+", "8+", "10+", "12+", "14+"),
            "pieces": (1, 24, 100, 250, 500, 1000),
            "players": ("1", "1-2", "2-4", "2-6", "3-8"),
        },
        (
            "Recommended for ages {age_range}.",
            "Includes {pieces} pieces and suits {players} players.",
            "Made with non-toxic, child-safe materials.",
        ),
        (
            Leaf("Building Sets", ("Building Set", "Construction Kit", "Marble Run", "Magnetic Tiles"), 39),
            Leaf(
                "Board Games", ("Board Game", "Card Game", "Strategy Game", "Party Game", "Jigsaw Puzzle"), 29
            ),
            Leaf("Dolls & Figures", ("Action Figure", "Doll", "Plush Toy", "Dollhouse", "Figure Set"), 24),
            Leaf("Outdoor Play", ("Kite", "Water Blaster", "Scooter", "Sandbox Set", "Swing"), 44),
            Leaf(
                "Educational Toys", ("Science Kit", "Coding Robot", "Microscope", "Globe", "Flash Cards"), 34
            ),
        ),
    ),
    Department(
        "Books",
        ("Illustrated", "Complete", "Essential", "Practical", "Unabridged", "Pocket", "Annotated"),
        ("2nd Edition", "3rd Edition", "Vol. 1", "Vol. 2", "Revised Edition", ""),
        {
            "format": ("Hardcover", "Paperback", "Paperback", "Spiral-Bound"),
            "pages": (96, 160, 224, 320, 416, 560),
            "language": ("English", "English", "English", "Spanish", "French", "German"),
        },
        (
            "A {format} edition of {pages} pages.",
            "Written in {language} with a clear, friendly voice.",
            "A favorite of readers and reviewers alike.",
        ),
        (
            Leaf("Fiction", ("Novel", "Short Story Collection", "Thriller", "Mystery", "Fantasy Epic"), 16),
            Leaf("Cookbooks", ("Cookbook", "Baking Book", "Recipe Collection", "Meal Prep Guide"), 27),
            Leaf("Science & Nature", ("Field Guide", "Atlas", "Science Primer", "Nature Journal"), 22),
            Leaf("Business & Money", ("Business Handbook", "Leadership Guide", "Finance Primer"), 24),
            Leaf("Children's Books", ("Picture Book", "Board Book", "Activity Book", "Bedtime Stories"), 11),
        ),
    ),
    Department(
        "Garden & Patio",
        ("Weather-Resistant", "Cordless", "Foldable", "Heavy-Duty", "Compact", "Rust-Proof", "Ergonomic"),
        ("Pro", "Plus", "XL", "Series 3", "Max", ""),
        {
            "material": ("Powder-Coated Steel", "Teak", "Resin Wicker", "Aluminum", "Terracotta", "Cedar"),
            "color": ("Black", "Green", "Sand", "Gray", "Natural Wood"),
            "power_source": ("Manual", "Electric", "Battery", "Gas", "Solar"),
        },
        (
            "Made from {material} that shrugs off sun and rain.",
            "Power source: {power_source}.",
            "Finished in {color} to blend into any yard.",
        ),
        (
            Leaf(
                "Gardening Tools",
                ("Pruning Shears", "Garden Trowel", "Hose Nozzle", "Rake", "Wheelbarrow"),
                24,
            ),
            Leaf("Outdoor Furniture", ("Patio Chair", "Bistro Set", "Outdoor Sofa", "Patio Umbrella"), 189),
            Leaf(
                "Grills & Outdoor Cooking",
                ("Gas Grill", "Charcoal Grill", "Pellet Smoker", "Pizza Oven"),
                249,
            ),
            Leaf("Planters & Pots", ("Planter", "Raised Garden Bed", "Hanging Basket", "Window Box"), 29),
            Leaf("Lawn Care", ("Lawn Mower", "Leaf Blower", "String Trimmer", "Sprinkler"), 149),
        ),
    ),
    Department(
        "Automotive",
        ("Universal", "Heavy-Duty", "All-Season", "Compact", "Professional", "Quick-Install", "Portable"),
        ("Pro", "HD", "Plus", "2000", "Elite", ""),
        {
            "fitment": ("Universal", "Most Cars", "SUVs & Trucks", "Sedans"),
            "color": ("Black", "Gray", "Beige", "Red"),
            "material": ("ABS Plastic", "Rubber", "Microfiber", "Chrome Vanadium Steel", "Nylon"),
        },
        (
            "Fitment: {fitment}. Check your vehicle's manual before ordering.",
            "Made from durable {material}.",
            "Installs in minutes with no special tools.",
        ),
        (
            Leaf(
                "Car Electronics",
                ("Dash Cam", "Car Charger", "Tire Inflator", "OBD2 Scanner", "Jump Starter"),
                59,
            ),
            Leaf("Car Care", ("Car Wash Kit", "Microfiber Towels", "Car Wax", "Detailing Brush Set"), 19),
            Leaf("Interior Accessories", ("Seat Cover", "Floor Mats", "Trunk Organizer", "Sunshade"), 34),
            Leaf("Tools & Equipment", ("Socket Set", "Torque Wrench", "Floor Jack", "Work Light"), 69),
            Leaf("Motorcycle", ("Motorcycle Helmet", "Riding Gloves", "Motorcycle Cover", "Tank Bag"), 89),
        ),
    ),
    Department(
        "Office Supplies",
        ("Ergonomic", "Refillable", "Recycled", "Quick-Dry", "Adjustable", "Space-Saving", "Premium"),
        ("Classic", "Pro", "12-Pack", "Executive", "Studio", ""),
        {
            "color": ("Black", "Blue", "White", "Assorted", "Walnut", "Gray"),
            "pack_size": (1, 1, 3, 6, 12, 24),
            "material": ("Recycled Paper", "Steel", "Bamboo", "Plastic", "Mesh"),
        },
        (
            "Sold in packs of {pack_size}.",
            "Made from {material}; shown here in {color}.",
            "Designed to keep a busy desk tidy.",
        ),
        (
            Leaf(
                "Writing Instruments",
                ("Gel Pen Set", "Fountain Pen", "Highlighters", "Mechanical Pencil"),
                12,
            ),
            Leaf(
                "Paper & Notebooks", ("Notebook", "Sticky Notes", "Planner", "Legal Pads", "Sketchbook"), 11
            ),
            Leaf("Desk Organization", ("Desk Organizer", "Monitor Stand", "File Sorter", "Letter Tray"), 27),
            Leaf("Office Furniture", ("Office Chair", "Standing Desk", "Filing Cabinet", "Bookshelf"), 219),
            Leaf("Printers & Ink", ("Ink Cartridge", "Toner", "Label Maker", "Laminator", "Photo Paper"), 39),
        ),
    ),
)

BRAND_HEADS = (
    "Al", "Bri", "Cor", "Dal", "El", "Fen", "Gar", "Hal", "Iso", "Jun", "Kel", "Lum", "Mar",
    "Nor", "Or", "Pel", "Quin", "Ros", "Sol", "Tor", "Ul", "Ven", "Wil", "Yar", "Zen",
)  # fmt: skip
BRAND_TAILS = (
    "a", "ara", "ex", "ia", "ico", "io", "is", "ix", "on", "ora", "ra", "sen", "ta", "tek",
    "ton", "va", "ven", "vo", "wick", "wood",
)  # fmt: skip

# Templates avoid "a"/"this ... is" so that plural nouns (Earbuds, Floor Mats) read right too.
DESCRIPTION_OPENERS = (
    "Meet the {adjective} {noun} from {brand}, built to last.",
    "{brand} designed the {adjective} {noun} with real customers in mind.",
    "From {brand}: the {adjective} {noun}, made for everyday use.",
    "Our customers' favorite {adjective} {noun}, by {brand}.",
)
DESCRIPTION_CLOSERS = (
    "Ships in recyclable packaging.",
    "Backed by {brand} customer support.",
    "Free returns within 30 days.",
    "",
)

REVIEW_TITLES = {
    1: ("Broke after a week", "Do not buy", "Very disappointed", "Waste of money", "Returned it"),
    2: ("Not great", "Expected more", "Mediocre {noun}", "Cheaply made", "Had issues"),
    3: ("It's okay", "Does the job", "Average {noun}", "Decent for the price", "Mixed feelings"),
    4: ("Very good", "Solid {noun}", "Happy with it", "Good value", "Almost perfect", "Works well"),
    5: ("Love it!", "Excellent {noun}", "Best purchase this year", "Highly recommend", "Five stars"),
}
REVIEW_OPENERS = {
    1: (
        "The {noun} stopped working after a few days.",
        "Arrived damaged and support never answered.",
        "Nothing like the photos.",
        "Fell apart the second time I used it.",
        "The {noun} was missing parts out of the box.",
        "Worst purchase I have made in a long time.",
    ),
    2: (
        "It works, but barely.",
        "Quality feels much cheaper than the price suggests.",
        "I really wanted to like the {noun}.",
        "Looks fine, but the build quality is poor.",
        "Had to send the first one back.",
        "Not worth the money in my opinion.",
    ),
    3: (
        "Perfectly average, nothing special.",
        "Does what it says, nothing more.",
        "Some things I like, some I don't.",
        "The {noun} is fine for occasional use.",
        "Decent, though I expected a bit more.",
        "Middle of the road in every way.",
    ),
    4: (
        "Really nice {noun} overall.",
        "Good quality for the money.",
        "I have used the {noun} almost every day.",
        "Solid build and easy to use.",
        "Better than the one I had before.",
        "Does the job well, with one or two small flaws.",
    ),
    5: (
        "Absolutely love the {noun}.",
        "Exceeded my expectations in every way.",
        "I bought a second one as a gift.",
        "Exactly what I was looking for.",
        "Great quality, and it arrived early.",
        "Could not be happier with the {noun}.",
    ),
}
REVIEW_DETAILS = (
    "Shipping was fast.",
    "Setup took about ten minutes.",
    "The packaging was minimal.",
    "My partner uses the {noun} more than I do.",
    "I compared it with two other brands first.",
    "It looks better in person.",
    "The instructions could be clearer.",
    "Sizing matched the description.",
    "I have had it for about three months now.",
    "The color is slightly darker than pictured.",
    "Customer service answered within a day.",
    "It was on sale when I bought it.",
    "My kids love the {noun} too.",
    "It is lighter than I expected.",
    "I read a lot of reviews before buying.",
    "Cleaning it is easy.",
)
REVIEW_CLOSERS = {
    1: ("Avoid.", "Save your money.", "Would give zero stars if I could."),
    2: ("Probably will not buy again.", "Look elsewhere.", "Two stars for effort."),
    3: ("Fine if it is on sale.", "It is okay.", "Might still recommend it."),
    4: ("Would recommend.", "Minor quibbles aside, a good buy.", "Four stars from me."),
    5: ("Highly recommended!", "Buy it.", "Would buy again in a heartbeat."),
}
FIRST_NAMES = (
    "Aisha", "Ben", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kate",
    "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will",
    "Xia", "Yusuf", "Zoe", "Anna", "Chris", "Diego", "Emma", "Finn", "Hannah", "Ivan", "Julia",
    "Kofi", "Lucia", "Mark", "Nina", "Omar", "Priya", "Raj", "Sofia", "Tom", "Uma", "Victor", "Wen",
)  # fmt: skip
INITIALS = "ABCDEFGHIJKLMNOPRSTVWY"
