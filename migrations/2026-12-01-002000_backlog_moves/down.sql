ALTER TABLE endpoints DROP COLUMN backlog_move_due_at;
ALTER TABLE endpoints DROP COLUMN backlog_move;
