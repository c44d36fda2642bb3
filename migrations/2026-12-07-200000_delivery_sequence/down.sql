DROP INDEX deliveries_waiting_by_endpoint_seq;
DROP TABLE delivery_sequence;
ALTER TABLE deliveries DROP COLUMN seq;
