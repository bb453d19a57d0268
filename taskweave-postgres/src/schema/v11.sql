-- taskweave schema version 11: an operator redrives dead letters. Runs in
-- one transaction with search_path = taskweave; see schema.rs.

-- A redrive (a task's id, or a filter of a kind, a cause and a key) is an
-- inbox message of kind 'redrive'. Only a node login (or the owner) posts
-- one: submitter_post (version 4) still names 'submit', 'cancel' and
-- 'run' alone, so a submitter's redrive is refused by row-level security.
ALTER TABLE inbox DROP CONSTRAINT inbox_kind_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_kind_check
    CHECK (kind IN ('register', 'heartbeat', 'report', 'submit', 'cancel', 'drain', 'run',
                    'redrive'));

-- Its size limit (version 3's, with 'redrive' small: a filter is a few
-- short names). NOT VALID: rows already there are not checked again.
ALTER TABLE inbox DROP CONSTRAINT inbox_body_fits_its_kind;
ALTER TABLE inbox ADD CONSTRAINT inbox_body_fits_its_kind CHECK (
    octet_length(body) <= CASE kind
        WHEN 'heartbeat' THEN 1024
        WHEN 'cancel' THEN 1024
        WHEN 'drain' THEN 1024
        WHEN 'redrive' THEN 4096
        WHEN 'register' THEN 65536
        ELSE 16777216
    END) NOT VALID;
