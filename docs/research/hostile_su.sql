-- (e) Run as the superuser postgres in "hostile": only a superuser can create an event trigger,
-- so only a dump of a database where a superuser made one can carry it.
CREATE FUNCTION public.canary_evt() RETURNS event_trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.canary('evtrig_' || lower(replace(tg_tag, ' ', '_')), 1); END $f$;
ALTER FUNCTION public.canary_evt() OWNER TO app_owner;
CREATE EVENT TRIGGER evt_canary ON ddl_command_start EXECUTE FUNCTION public.canary_evt();
