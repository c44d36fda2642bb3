-- Each delivery's place in its endpoint's line, given by the database as
-- the delivery is written (see src/store/sequence.rs): ordered endpoints
-- send and page by it, and an endpoint tells a late hand-over from a new
-- delivery by it, so no wall clock decides either. Deliveries written
-- before keep 0, and among themselves their time-ordered ids' order.
ALTER TABLE deliveries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

-- Where numbers come from. PostgreSQL reads BIGSERIAL as a sequence, which
-- it draws from without a lock; SQLite reads only the type name, and its
-- single writer counts in the one row instead.
CREATE TABLE delivery_sequence (
    last BIGSERIAL NOT NULL
);
INSERT INTO delivery_sequence (last) VALUES (0);

-- An ordered endpoint pages its pending deliveries in line order.
CREATE INDEX deliveries_waiting_by_endpoint_seq ON deliveries (endpoint_id, state, seq, id)
    WHERE state = 'pending' OR state = 'held';
