-- Run as app_owner (NOT a superuser) in database "hostile", which app_owner owns.
-- canary(tag, v): first tries to shed any SET ROLE (set_config('role','none')), then,
-- only if it is a superuser, runs a program as the server's OS user.
-- The file name carries the server port: 5432 = main server, anything else = a sandbox.
CREATE FUNCTION public.canary_v(tag text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $f$
BEGIN
  BEGIN PERFORM set_config('role', 'none', false); EXCEPTION WHEN others THEN NULL; END;
  IF current_setting('is_superuser') = 'on' THEN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
      'cat >/dev/null; touch /tmp/research15/canary/' || tag || '.' || current_setting('port') || '.' || session_user || '.' || current_user);
  END IF;
  RETURN true;
END $f$;
-- An IMMUTABLE wrapper (index expressions, generated columns need one); a volatile callee may still COPY.
CREATE FUNCTION public.canary(tag text, v anyelement) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $f$
BEGIN RETURN public.canary_v(tag); END $f$;
CREATE FUNCTION public.canary_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.canary('trigger', 1); RETURN NEW; END $f$;

-- (a) CHECK constraint (pg_dump writes it inline in CREATE TABLE: checked during COPY)
CREATE TABLE t_check (id int PRIMARY KEY, v text CHECK (public.canary('check', v)));
-- (b) index expression and (b') partial-index predicate
CREATE TABLE t_index (id int PRIMARY KEY, v text);
CREATE INDEX t_index_expr ON t_index ((public.canary('index', v)));
CREATE INDEX t_index_pred ON t_index (id) WHERE public.canary('partial', v);
-- (c) column default (COPY names every column, so should never fire)
CREATE TABLE t_default (id int PRIMARY KEY, b boolean DEFAULT public.canary('default', 1));
-- (d) row trigger
CREATE TABLE t_trigger (id int PRIMARY KEY, v text);
CREATE TRIGGER t_trigger_trg BEFORE INSERT ON t_trigger FOR EACH ROW EXECUTE FUNCTION public.canary_trg();
-- (f) stored generated column (computed during COPY)
CREATE TABLE t_generated (id int PRIMARY KEY, v text, g boolean GENERATED ALWAYS AS (public.canary('generated', v)) STORED);
-- (g) domain CHECK (checked during COPY)
CREATE DOMAIN hostile_dom AS text CHECK (public.canary('domain', VALUE));
CREATE TABLE t_domain (id int PRIMARY KEY, v hostile_dom);
-- (h) materialized view (REFRESH during restore)
CREATE MATERIALIZED VIEW mv AS SELECT id, public.canary('matview', v) AS c FROM t_check;
-- (i) row-level security policy (counting as a non-superuser runs it; superuser bypasses it)
CREATE TABLE t_rls (id int PRIMARY KEY, v text);
-- (j) a view a smoke query might read
CREATE VIEW v_smoke AS SELECT id, public.canary('smoke', v) AS c FROM t_check;
-- (k) exclusion constraint / FK are not user-code paths here; (l) statistics expression
CREATE STATISTICS st_expr ON (public.canary('statistics', v)) FROM t_check;

INSERT INTO t_check SELECT g, 'x' || g FROM generate_series(1, 1000) g;
INSERT INTO t_index SELECT g, 'x' || g FROM generate_series(1, 1000) g;
INSERT INTO t_default SELECT g, true FROM generate_series(1, 1000) g;
INSERT INTO t_trigger SELECT g, 'x' || g FROM generate_series(1, 1000) g;
INSERT INTO t_generated (id, v) SELECT g, 'x' || g FROM generate_series(1, 1000) g;
INSERT INTO t_domain SELECT g, 'x' || g FROM generate_series(1, 1000) g;
INSERT INTO t_rls SELECT g, 'x' || g FROM generate_series(1, 1000) g;
REFRESH MATERIALIZED VIEW mv;
ALTER TABLE t_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE t_rls FORCE ROW LEVEL SECURITY;
CREATE POLICY p_rls ON t_rls USING (id <= 10 AND public.canary('rls', v));
