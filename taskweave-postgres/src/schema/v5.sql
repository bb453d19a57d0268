-- taskweave schema version 5: what each agent login may register as.
-- Runs in one transaction with search_path = taskweave; see schema.rs.

-- An agent login's grant: the most slots it may register (max_capacity)
-- and the capabilities it may claim. NULL is no limit: a login created
-- before version 5, or without a grant, registers as it likes until an
-- administrator grants it (`taskweave-pg init --grant LOGIN:SLOTS[:CAPS]`).
ALTER TABLE agent_logins
    ADD COLUMN max_capacity BIGINT CHECK (max_capacity >= 1),
    ADD COLUMN capabilities TEXT[];

-- The database refuses an agent login's registration beyond its grant,
-- before any node reads it: a hostile agent cannot claim work it was not
-- granted, whatever the leader's code. It runs with the poster's
-- privileges and reads the poster's own grant (row-level security lets an
-- agent login read its own row of agent_logins). A body that is not the
-- JSON of a registration is refused by the cast, and a capacity or a
-- capability list of the wrong type by the conversions. An agent login
-- with no row (none is made without one) has no grant to check.
CREATE FUNCTION registration_within_grant() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, taskweave
AS $$
DECLARE
    granted_slots BIGINT;
    granted_capabilities TEXT[];
    profile JSONB;
    slots NUMERIC;
    beyond TEXT[];
BEGIN
    -- Row-level security lets only nodes and agents post registrations,
    -- and a node is trusted (nor may it read the logins).
    IF NOT pg_has_role(current_user, 'taskweave_agent', 'MEMBER') THEN
        RETURN NEW;
    END IF;
    SELECT max_capacity, capabilities INTO granted_slots, granted_capabilities
        FROM taskweave.agent_logins WHERE login = current_user;
    profile := NEW.body::jsonb -> 'Register' -> 'profile';
    -- A missing capacity is the profile's default, one slot.
    slots := COALESCE((profile ->> 'capacity')::numeric, 1);
    IF granted_slots IS NOT NULL AND slots > granted_slots THEN
        RAISE EXCEPTION 'agent login % may register at most % slots, not %',
                current_user, granted_slots, slots
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'register with a capacity within the grant, or have the '
                      'database owner grant more: taskweave-pg init --grant '
                      || current_user || ':SLOTS[:CAP,CAP]';
    END IF;
    IF granted_capabilities IS NOT NULL THEN
        SELECT array_agg(wanted ORDER BY wanted) INTO beyond
            FROM jsonb_array_elements_text(COALESCE(profile -> 'capabilities', '[]'::jsonb)) AS wanted
            WHERE wanted <> ALL (granted_capabilities);
        IF beyond IS NOT NULL THEN
            RAISE EXCEPTION 'agent login % may not claim capabilities %: it was granted %',
                    current_user, beyond, granted_capabilities
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'register without them, or have the database owner grant '
                          'them: taskweave-pg init --grant ' || current_user
                          || ':SLOTS:CAP,CAP';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION registration_within_grant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION registration_within_grant() TO taskweave_agent, taskweave_node;

CREATE TRIGGER registration_within_grant BEFORE INSERT ON inbox
    FOR EACH ROW WHEN (NEW.kind = 'register')
    EXECUTE FUNCTION registration_within_grant();
