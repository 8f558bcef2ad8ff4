-- Issue 13: a sealed batch's body (up to 500 events of JSON, some 230 kB) was pglz-compressed on
-- every insert: measured on the 2-core machine, compressing it cost about as much PostgreSQL CPU
-- per event as writing the event to the outbox. Stored out of line, uncompressed: it is kept only
-- for the retention (delivered batches are pruned with their events), so the disk it takes is
-- bounded, and the CPU goes to nothing. Existing rows keep their form until rewritten.
ALTER TABLE exchange_batches ALTER COLUMN body SET STORAGE EXTERNAL;
