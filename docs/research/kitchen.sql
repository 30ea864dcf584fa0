-- "kitchen": a database owned by app_owner with the objects a non-superuser restore trips on.
-- Run as postgres (superuser) on the main server. Everything app_owner could make itself is made as app_owner.
CREATE SCHEMA ext AUTHORIZATION app_owner;
CREATE EXTENSION hstore;                          -- trusted
CREATE EXTENSION citext;                          -- trusted
CREATE EXTENSION pg_trgm WITH SCHEMA ext;         -- trusted, non-public schema
CREATE EXTENSION postgres_fdw;                    -- NOT trusted
CREATE EXTENSION pgcrypto;                        -- trusted
CREATE FOREIGN DATA WRAPPER dummy_fdw;            -- superuser-only object, not from an extension
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO app_owner;
-- C-language and LEAKPROOF functions: superuser-only
CREATE FUNCTION public.c_show_limit() RETURNS real LANGUAGE c STABLE AS '$libdir/pg_trgm', 'show_limit';
CREATE FUNCTION public.lp_eq(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF AS 'SELECT $1 = $2';
CREATE TABLE public.uses_c (id int, lim real DEFAULT public.c_show_limit());
ALTER TABLE public.uses_c OWNER TO app_owner;
INSERT INTO public.uses_c VALUES (1, 0.3);
-- cast between two built-in types (restorer owns neither)
CREATE FUNCTION public.date_to_int(date) RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT ($1 - DATE '2000-01-01')$$;
CREATE CAST (date AS integer) WITH FUNCTION public.date_to_int(date);
-- operator family/class
CREATE OPERATOR FAMILY public.my_fam USING btree;
-- publications / subscription
CREATE PUBLICATION pub_all FOR ALL TABLES;
CREATE SUBSCRIPTION sub_x CONNECTION 'host=127.0.0.1 dbname=nowhere' PUBLICATION pub_all WITH (connect = false, slot_name = NONE, enabled = false);
-- function with a SET of a superuser-only parameter
CREATE FUNCTION public.su_set() RETURNS int LANGUAGE sql SET log_min_messages = 'debug1' AS 'SELECT 1';
-- tablespace
CREATE TABLESPACE ts_r15 LOCATION '/tmp/research15/work/ts';
GRANT CREATE ON TABLESPACE ts_r15 TO app_owner;
-- a trusted procedural language not from an extension? (CREATE LANGUAGE needs superuser)
CREATE LANGUAGE plsample_r15 HANDLER plpgsql_call_handler;
SET ROLE app_owner;
CREATE TABLE public.docs (id serial PRIMARY KEY, tags hstore, email citext, body text, secret bytea);
CREATE INDEX docs_trgm ON public.docs USING gin (body ext.gin_trgm_ops);
INSERT INTO public.docs (tags, email, body, secret)
  SELECT hstore('k', g::text), 'User' || g || '@X.org', md5(g::text), digest(g::text, 'sha256') FROM generate_series(1, 500) g;
CREATE TABLE public.in_ts (id int) TABLESPACE ts_r15;
INSERT INTO public.in_ts SELECT generate_series(1, 10);
CREATE SERVER remote_srv FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'nowhere');
CREATE USER MAPPING FOR app_owner SERVER remote_srv OPTIONS (user 'x', password 'y');
CREATE FOREIGN TABLE public.remote_t (id int) SERVER remote_srv;
CREATE PUBLICATION pub_docs FOR TABLE public.docs;
SELECT lo_from_bytea(0, 'large object payload');
CREATE COLLATION public.my_coll (provider = icu, locale = 'de-u-co-phonebk');
CREATE TEXT SEARCH CONFIGURATION public.my_ts (COPY = pg_catalog.english);
COMMENT ON TABLE public.docs IS 'documents';
CREATE TABLE public.big (id bigint PRIMARY KEY, payload text);
INSERT INTO public.big SELECT g, repeat('p', 50) FROM generate_series(1, 20000) g;
RESET ROLE;
CREATE FUNCTION public.evt_noop() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
CREATE EVENT TRIGGER evt_k ON sql_drop EXECUTE FUNCTION public.evt_noop();
