"""/v1/categories: tree, detail with stats, writes and the two-level rule."""

from __future__ import annotations

from decimal import Decimal

from tests.factories import make_category, make_product, token


def test_tree_nests_children_with_subtree_product_counts(client, engine, auth):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    client.post(
        "/v1/products",
        json={"sku": token("S"), "name": "N", "brand": "B", "price": "1.00", "category": child.slug},
        headers=auth,
    )
    items = client.get("/v1/categories").get_json()["items"]
    node = next(item for item in items if item["slug"] == parent.slug)
    assert node["product_count"] == 1
    assert [c["slug"] for c in node["children"]] == [child.slug]
    assert node["children"][0]["product_count"] == 1
    assert child.slug not in [item["slug"] for item in items]


def test_detail_has_parent_children_and_stats(client, engine, auth):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    for price in ("10.00", "30.00"):
        body = {"sku": token("S"), "name": "N", "brand": "B", "price": price, "category": child.slug}
        assert client.post("/v1/products", json=body, headers=auth).status_code == 201
    body = client.get(f"/v1/categories/{parent.slug}").get_json()
    assert body["parent"] is None
    assert [c["slug"] for c in body["children"]] == [child.slug]
    stats = body["stats"]
    assert stats["product_count"] == 2
    assert (Decimal(stats["min_price"]), Decimal(stats["max_price"])) == (Decimal(10), Decimal(30))
    assert client.get(f"/v1/categories/{child.slug}").get_json()["parent"]["slug"] == parent.slug


def test_unknown_category_is_404(client):
    assert client.get("/v1/categories/nothing-here").status_code == 404


def test_create_patch_delete(client, auth):
    slug = token("new")
    created = client.post("/v1/categories", json={"slug": slug, "name": "New"}, headers=auth)
    assert created.status_code == 201
    assert created.headers["Location"] == f"/v1/categories/{slug}"
    renamed = client.patch(f"/v1/categories/{slug}", json={"name": "Renamed"}, headers=auth)
    assert renamed.get_json()["name"] == "Renamed"
    assert client.delete(f"/v1/categories/{slug}", headers=auth).status_code == 204
    assert client.get(f"/v1/categories/{slug}").status_code == 404


def test_category_writes_need_a_token(client, engine):
    category = make_category(engine)
    assert client.post("/v1/categories", json={"slug": token("x"), "name": "X"}).status_code == 401
    assert client.patch(f"/v1/categories/{category.slug}", json={"name": "Y"}).status_code == 401
    assert client.delete(f"/v1/categories/{category.slug}").status_code == 401


def test_duplicate_slug_is_409(client, engine, auth):
    existing = make_category(engine)
    response = client.post("/v1/categories", json={"slug": existing.slug, "name": "Dup"}, headers=auth)
    assert response.status_code == 409
    assert response.get_json()["errors"][0]["field"] == "slug"


def test_tree_is_two_levels_deep_at_most(client, engine, auth):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    response = client.post(
        "/v1/categories", json={"slug": token("g"), "name": "G", "parent": child.slug}, headers=auth
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "parent"
    moved = client.patch(
        f"/v1/categories/{parent.slug}", json={"parent": make_category(engine).slug}, headers=auth
    )
    assert moved.status_code == 422


def test_a_category_in_use_cannot_be_deleted(client, engine, auth):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    make_product(engine, child)
    assert client.delete(f"/v1/categories/{parent.slug}", headers=auth).status_code == 409
    assert client.delete(f"/v1/categories/{child.slug}", headers=auth).status_code == 409
    assert client.get(f"/v1/categories/{child.slug}").status_code == 200


def test_category_if_match(client, engine, auth):
    category = make_category(engine)
    etag = client.get(f"/v1/categories/{category.slug}").headers["ETag"]
    assert client.get(f"/v1/categories/{category.slug}", headers={"If-None-Match": etag}).status_code == 304
    client.patch(f"/v1/categories/{category.slug}", json={"name": "Changed"}, headers=auth)
    stale = client.delete(f"/v1/categories/{category.slug}", headers={**auth, "If-Match": etag})
    assert stale.status_code == 412


def test_invalid_category_input_is_422(client, auth):
    response = client.post("/v1/categories", json={"slug": "Bad Slug!", "name": ""}, headers=auth)
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == {"slug", "name"}
