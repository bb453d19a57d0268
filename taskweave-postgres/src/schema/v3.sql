-- taskweave schema version 3: a task's output beside its end. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- The output an agent completed the task with (its encoded result), or
-- NULL for a task that ended otherwise or completed without one. The
-- leader holds it to its output limit before it is journaled.
ALTER TABLE outcomes ADD COLUMN output TEXT;

-- Each kind of inbox message has a size limit, so that no login can stall
-- the leader with huge messages of a kind that is small by nature: a
-- heartbeat, a cancel or a drain is a few bytes, a registration a profile;
-- a report carries at most an output (16 MiB, the largest output limit a
-- node takes) and a submission its tasks. NOT VALID: rows already there
-- are not checked again, new ones are.
ALTER TABLE inbox ADD CONSTRAINT inbox_body_fits_its_kind CHECK (
    octet_length(body) <= CASE kind
        WHEN 'heartbeat' THEN 1024
        WHEN 'cancel' THEN 1024
        WHEN 'drain' THEN 1024
        WHEN 'register' THEN 65536
        ELSE 16777216
    END) NOT VALID;
