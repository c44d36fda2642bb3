-- Moving an endpoint's backlog (pending -> held on disable, held -> pending
-- or cancelled on enable) runs in batches after its status change commits,
-- so other writes go on between them. backlog_move names the move still
-- under way (NULL: none), for loading the endpoint's state to finish it
-- after a crash; backlog_move_due_at is when replayed deliveries fall due.
ALTER TABLE endpoints ADD COLUMN backlog_move TEXT;
ALTER TABLE endpoints ADD COLUMN backlog_move_due_at BIGINT;
