"""A deterministic, realistic demo catalog and its bulk loader (``flask --app api seed``).

The generator builds ~60 categories in two levels, ~150 brands, products with category-typical
names, prices, stock and attributes, and reviews whose counts per product are Zipf-skewed and whose
ratings follow the J-shaped distribution real stores show, tilted per product by a hidden quality.
Everything comes from one ``random.Random(seed)`` drawn in a fixed order and all timestamps are
relative to a fixed base date, so the same seed (on the same Python version) writes identical rows.
Rows are streamed to PostgreSQL with COPY as they are generated (the server ingests one chunk while
Python builds the next), with explicit ids, in one transaction that also fixes the id sequences,
refreshes every aggregate and ANALYZEs: a failure leaves the catalog as it was.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from .services.aggregates import recompute_all
from .services.slugs import slugify

BASE_DATE = datetime(2026, 1, 1, tzinfo=UTC)
"""Every generated timestamp lies in the two years before this instant."""

WINDOW_START = BASE_DATE.replace(year=BASE_DATE.year - 2)
WINDOW_SECONDS = int((BASE_DATE - WINDOW_START).total_seconds())

CATALOG_TABLES = ("categories", "products", "reviews", "product_rating_summaries", "category_stats")
"""Everything the seed writes; what ``reset`` truncates and what must be empty otherwise."""

PHASES = ("categories", "products", "reviews", "aggregates", "analyze")
"""The steps reported to ``progress``, in order."""

Progress = Callable[[str, int], None]
"""``progress(phase, rows)``: ``rows`` more rows of ``phase`` go to the server (0 when it starts)."""

BATCH_ROWS = 2000
"""Rows per COPY chunk: large enough to amortise a call, small enough to keep progress smooth."""


class CatalogNotEmpty(RuntimeError):
    """The catalog tables already hold rows and ``reset`` was not asked for."""


@dataclass(frozen=True)
class SeedResult:
    categories: int
    products: int
    reviews: int


# --- Vocabulary -------------------------------------------------------------------------------------


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

BRAND_COUNT = 150
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

# Real review ratings are J-shaped: mostly fives, a bump of ones from unhappy buyers, few twos.
RATING_BASE = (0.09, 0.05, 0.08, 0.20, 0.58)
QUALITY_TILT = 0.45
"""How strongly a product's hidden quality (a standard normal) shifts its ratings up or down."""

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

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: str) -> str:
    """A text value as a COPY text-format field."""
    return value.translate(_COPY_ESCAPES)


def _timestamp(seconds: int) -> str:
    """``seconds`` after WINDOW_START as a timestamptz literal."""
    return (WINDOW_START + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S+00")


def _price(amount: float, ending: str) -> str:
    """Shelf-style price near ``amount``: 7.99, 24.49, and whole fives under 5 past 100 (124.99)."""
    dollars = int(amount)
    if amount >= 100:
        dollars = max(5 * round(amount / 5) - 1, 99)
    return f"{dollars}.{ending}"


# --- Generation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Category:
    id: int
    slug: str
    name: str
    parent_id: int | None
    department: Department | None
    leaf: Leaf | None


@dataclass(frozen=True)
class _Product:
    """What review generation needs to know about a product."""

    created: int
    noun: str
    quality: float


class CatalogGenerator:
    """Draws the whole catalog from one seeded Random, in a fixed order, one table at a time.

    ``category_rows``, ``product_rows`` and ``review_rows`` must be consumed in that order: products
    need the categories and brands, reviews need the products.
    """

    def __init__(self, seed: int, products: int, reviews: int):
        if products < 0 or reviews < 0:
            raise ValueError("products and reviews must not be negative")
        if reviews and not products:
            raise ValueError("reviews need at least one product")
        self.rng = random.Random(seed)
        self.product_count = products
        self.review_count = reviews
        self.categories = self._categories()
        self.brands = self._brands()
        self.products: list[_Product] = []
        self._texts: dict[str, _ReviewTexts] = {}

    def _categories(self) -> list[_Category]:
        categories: list[_Category] = []
        for department in DEPARTMENTS:
            parent_id = len(categories) + 1
            categories.append(
                _Category(parent_id, slugify(department.name), department.name, None, department, None)
            )
            for leaf in department.leaves:
                category_id = len(categories) + 1
                categories.append(
                    _Category(category_id, slugify(leaf.name), leaf.name, parent_id, department, leaf)
                )
        return categories

    def _brands(self) -> dict[str, list[str]]:
        """Brands per department; each has its own brands and a few shares one with a neighbour."""
        rng = self.rng
        names = [head + tail for head in BRAND_HEADS for tail in BRAND_TAILS]
        chosen = rng.sample(names, BRAND_COUNT)
        by_department: dict[str, list[str]] = {d.name: [] for d in DEPARTMENTS}
        for index, brand in enumerate(chosen):
            home = DEPARTMENTS[index % len(DEPARTMENTS)]
            by_department[home.name].append(brand)
            if rng.random() < 0.1:
                by_department[DEPARTMENTS[(index + 1) % len(DEPARTMENTS)].name].append(brand)
        return by_department

    def category_rows(self) -> Iterator[list[str]]:
        created = _timestamp(0)
        yield [
            f"{c.id}\t{c.slug}\t{_field(c.name)}\t{c.parent_id or NULL}\t{created}\t{created}\n"
            for c in self.categories
        ]

    def product_rows(self) -> Iterator[list[str]]:
        rng = self.rng
        leaves = [c for c in self.categories if c.leaf is not None]
        # Uneven category sizes: some leaves hold several times as many products as others.
        leaf_weights = list(_cumulative(rng.uniform(0.3, 1.7) for _ in leaves))
        brand_weights = {
            name: list(_cumulative((rank + 1) ** -0.9 for rank in range(len(brands))))
            for name, brands in self.brands.items()
        }
        last_created = WINDOW_SECONDS - 86400  # a day before the base date, so reviews have room
        batch: list[str] = []
        for product_id in range(1, self.product_count + 1):
            category = leaves[bisect.bisect(leaf_weights, rng.random() * leaf_weights[-1])]
            department, leaf = category.department, category.leaf
            brands = self.brands[department.name]
            weights = brand_weights[department.name]
            brand = brands[bisect.bisect(weights, rng.random() * weights[-1])]
            noun = _pick(rng, leaf.nouns)
            adjective = _pick(rng, department.adjectives)
            model = _pick(rng, department.models)
            name = f"{brand} {adjective} {noun} {model}".rstrip()
            sku = f"SHL-{product_id:07d}"
            attributes = {key: _pick(rng, values) for key, values in department.attributes.items()}
            description = self._description(brand, adjective, noun, department, attributes)
            amount = leaf.median_price * math.exp(rng.gauss(0, 0.55))
            price = _price(amount, "99" if rng.random() < 0.8 else "49")
            stock = 0 if rng.random() < 0.08 else min(int(rng.lognormvariate(3.2, 1.0)) + 1, 5000)
            active = "f" if rng.random() < 0.03 else "t"
            # sqrt skews creation toward the base date: the catalog grew over the two years.
            created = int(last_created * math.sqrt(rng.random()))
            updated = created + int((WINDOW_SECONDS - created) * rng.random() ** 3)
            self.products.append(_Product(created, noun, rng.gauss(0, 1)))
            batch.append(
                f"{product_id}\t{sku}\t{_field(name)}\t{slugify(name)}-{sku.lower()}\t{_field(description)}\t"
                f"{_field(brand)}\t{price}\tUSD\t{stock}\t{_field(json.dumps(attributes))}\t{category.id}\t"
                f"{active}\t1\t{_timestamp(created)}\t{_timestamp(updated)}\n"
            )
            if len(batch) == BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _description(
        self, brand: str, adjective: str, noun: str, department: Department, attributes: dict
    ) -> str:
        rng = self.rng
        opener = _pick(rng, DESCRIPTION_OPENERS).format(
            brand=brand, adjective=adjective.lower(), noun=noun.lower()
        )
        features = rng.sample(department.features, 2)
        closer = _pick(rng, DESCRIPTION_CLOSERS).format(brand=brand)
        sentences = [opener, *(f.format(**attributes) for f in features), closer]
        return " ".join(s for s in sentences if s)

    def review_rows(self) -> Iterator[list[str]]:
        rng = self.rng
        counts = review_counts(rng, len(self.products), self.review_count)
        review_id = 0
        batch: list[str] = []
        for product_id, (product, count) in enumerate(zip(self.products, counts, strict=True), start=1):
            if not count:
                continue
            tilts = (math.exp(QUALITY_TILT * product.quality * (rating - 3)) for rating in range(1, 6))
            ratings = list(_cumulative(base * tilt for base, tilt in zip(RATING_BASE, tilts, strict=True)))
            texts = self._review_texts(product.noun)
            span = WINDOW_SECONDS - product.created - 60
            # Reviews come after the product exists; ids of one product's reviews follow their dates.
            times = sorted(product.created + 60 + int(span * rng.random()) for _ in range(count))
            for created in times:
                review_id += 1
                rating = bisect.bisect(ratings, rng.random() * ratings[-1]) + 1
                title, body = texts.draw(rng, rating)
                author = f"{_pick(rng, FIRST_NAMES)} {_pick(rng, INITIALS)}."
                batch.append(
                    f"{review_id}\t{product_id}\t{rating}\t{title}\t{body}\t{author}\t{_timestamp(created)}\n"
                )
                if len(batch) == BATCH_ROWS:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _review_texts(self, noun: str) -> _ReviewTexts:
        if noun not in self._texts:
            self._texts[noun] = _ReviewTexts.for_noun(noun)
        return self._texts[noun]


@dataclass(frozen=True)
class _ReviewTexts:
    """The review templates with one noun filled in and COPY-escaped, built once per noun."""

    titles: dict[int, tuple[str, ...]]
    openers: dict[int, tuple[str, ...]]
    details: tuple[str, ...]
    closers: dict[int, tuple[str, ...]]

    @classmethod
    def for_noun(cls, noun: str) -> _ReviewTexts:
        def fill(templates: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(_field(t.format(noun=noun.lower())) for t in templates)

        return cls(
            titles={rating: fill(t) for rating, t in REVIEW_TITLES.items()},
            openers={rating: fill(t) for rating, t in REVIEW_OPENERS.items()},
            details=fill(REVIEW_DETAILS),
            closers={rating: fill(t) for rating, t in REVIEW_CLOSERS.items()},
        )

    def draw(self, rng: random.Random, rating: int) -> tuple[str, str]:
        """A title and a body of zero to three sentences in the tone of ``rating``."""
        title = _pick(rng, self.titles[rating])
        length = rng.random()
        if length < 0.08:
            return title, ""
        opener = _pick(rng, self.openers[rating])
        if length < 0.4:
            return title, opener
        if length < 0.75:
            return title, f"{opener} {_pick(rng, self.details)}"
        return title, f"{opener} {_pick(rng, self.details)} {_pick(rng, self.closers[rating])}"


def review_counts(rng: random.Random, products: int, reviews: int) -> list[int]:
    """Per-product review counts summing to ``reviews``: Zipf-like over a random 60% of products.

    A few products get a large share (thousands at a million reviews), the tail gets a handful, and
    the products left out get none. Largest-remainder rounding makes the total exact.
    """
    counts = [0] * products
    if not reviews:
        return counts
    order = list(range(products))
    rng.shuffle(order)
    reviewed = order[: max(1, round(products * 0.6))]
    weights = [(rank + 1) ** -0.7 * rng.lognormvariate(0, 0.25) for rank in range(len(reviewed))]
    scale = reviews / sum(weights)
    quotas = [w * scale for w in weights]
    for index, quota in zip(reviewed, quotas, strict=True):
        counts[index] = int(quota)
    short = reviews - sum(counts)
    by_remainder = sorted(range(len(reviewed)), key=lambda i: (quotas[i] - int(quotas[i]), -i), reverse=True)
    for i in by_remainder[:short]:
        counts[reviewed[i]] += 1
    return counts


def _pick(rng: random.Random, options: tuple):
    # Indexing by random() is several times faster than rng.choice, and this runs millions of times.
    return options[int(rng.random() * len(options))]


def _cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


# --- Loading ----------------------------------------------------------------------------------------

_COLUMNS = {
    "categories": "id, slug, name, parent_id, created_at, updated_at",
    "products": "id, sku, name, slug, description, brand, price, currency, stock, attributes, category_id, "
    "is_active, version, created_at, updated_at",
    "reviews": "id, product_id, rating, title, body, author, created_at",
}


_HAS_ROWS = text(
    "SELECT EXISTS (SELECT 1 FROM categories) OR EXISTS (SELECT 1 FROM products)"
    " OR EXISTS (SELECT 1 FROM reviews) OR EXISTS (SELECT 1 FROM product_rating_summaries)"
    " OR EXISTS (SELECT 1 FROM category_stats)"
)
# COPY wrote explicit ids; move each id sequence past them so the next insert gets a fresh id.
_FIX_SEQUENCES = text(
    """
    SELECT setval(pg_get_serial_sequence('categories', 'id'), coalesce(max(id), 0) + 1, false)
    FROM categories
    UNION ALL
    SELECT setval(pg_get_serial_sequence('products', 'id'), coalesce(max(id), 0) + 1, false) FROM products
    UNION ALL
    SELECT setval(pg_get_serial_sequence('reviews', 'id'), coalesce(max(id), 0) + 1, false) FROM reviews
    """
)


class _BatchReader:
    """A read()-only file over batches of COPY lines, for psycopg2's ``copy_expert``.

    Each read() builds the next batch, so generation and the server's ingestion overlap.
    """

    def __init__(self, batches: Iterator[list[str]], on_batch: Callable[[int], None]):
        self._batches = batches
        self._on_batch = on_batch

    def read(self, _size: int = -1) -> bytes:
        batch = next(self._batches, None)
        if batch is None:
            return b""
        self._on_batch(len(batch))
        return "".join(batch).encode()


def seed_catalog(
    engine: Engine,
    *,
    products: int,
    reviews: int,
    seed: int,
    reset: bool = False,
    progress: Progress | None = None,
) -> SeedResult:
    """Generate and load a catalog of ``products`` products and ``reviews`` reviews in one transaction.

    Raises :class:`CatalogNotEmpty` if any catalog table has rows, unless ``reset``, which first
    empties them (TRUNCATE ... RESTART IDENTITY CASCADE, so rows elsewhere that reference them go too).
    """
    report = progress or _ignore
    generator = CatalogGenerator(seed, products, reviews)
    with engine.begin() as conn:
        _prepare(conn, reset)
        cursor = conn.connection.cursor()
        for table, rows in (
            ("categories", generator.category_rows()),
            ("products", generator.product_rows()),
            ("reviews", generator.review_rows()),
        ):
            report(table, 0)
            reader = _BatchReader(rows, lambda n, table=table: report(table, n))
            cursor.copy_expert(f"COPY {table} ({_COLUMNS[table]}) FROM STDIN", reader, size=1 << 20)
        conn.execute(_FIX_SEQUENCES)
        report("aggregates", 0)
        recompute_all(conn)
        report("analyze", 0)
        conn.execute(text(f"ANALYZE {', '.join(CATALOG_TABLES)}"))
    return SeedResult(len(generator.categories), products, reviews)


def _prepare(conn: Connection, reset: bool) -> None:
    """Lift the app's statement timeout, take the tables, and empty them or check that they are empty."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    # The full refresh groups every product at once: room for an in-memory hash, not a disk spill.
    conn.execute(text("SET LOCAL work_mem = '64MB'"))
    tables = ", ".join(CATALOG_TABLES)
    if reset:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return
    # EXCLUSIVE blocks writers (and a concurrent seed) between the check and the load; reads go on.
    conn.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
    if conn.execute(_HAS_ROWS).scalar():
        raise CatalogNotEmpty("the catalog already has data; pass reset=True (--reset) to replace it")


def _ignore(_phase: str, _rows: int) -> None:
    pass
