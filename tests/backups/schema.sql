-- A schema that exercises what pg_dump must carry: sequences, identity
-- columns, enums, domains, partitions, triggers, functions, a materialized
-- view, contrib extensions, large objects and non-ASCII names.
CREATE EXTENSION pg_trgm;
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email citext UNIQUE NOT NULL,
    attrs hstore,
    mood mood DEFAULT 'ok',
    updated_at timestamptz
);
CREATE TABLE "Bestellungen_ÄÖÜ" (
    id serial PRIMARY KEY,
    customer_id bigint REFERENCES customers(id),
    "menge_größe" positive_int NOT NULL,
    invoice integer DEFAULT nextval('invoice_no'),
    note text
);
CREATE TABLE events (id bigserial, happened date NOT NULL, payload jsonb) PARTITION BY RANGE (happened);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
CREATE INDEX customers_email_trgm ON customers USING gin ((email::text) gin_trgm_ops);
INSERT INTO customers (email, attrs, mood)
    SELECT 'user' || i || '@example.com', hstore('plan', (i % 3)::text), (ARRAY['sad','ok','happy'])[1 + i % 3]::mood
    FROM generate_series(1, 500) i;
INSERT INTO "Bestellungen_ÄÖÜ" (customer_id, "menge_größe", note)
    SELECT 1 + i % 500, 1 + i % 9, 'Grüße ' || i FROM generate_series(1, 1200) i;
INSERT INTO events (happened, payload)
    SELECT DATE '2025-06-01' + (i % 400), jsonb_build_object('i', i) FROM generate_series(1, 800) i;
CREATE MATERIALIZED VIEW customer_orders AS
    SELECT customer_id, count(*) AS orders FROM "Bestellungen_ÄÖÜ" GROUP BY customer_id;
SELECT lo_from_bytea(0, convert_to('large object ' || i, 'UTF8')) FROM generate_series(1, 3) i;
SELECT setval('invoice_no', 5000);
