-- Bumped (durably, synchronous = FULL) every time the store is opened; the fencing counter is
-- then raised to at least boot_epoch << 32. With synchronous = NORMAL an OS crash or power loss
-- can roll the counter back to an older commit, but never below the epoch of the last open, so
-- tokens issued after a restart are greater than every token issued before it. Starts at -1: the
-- first open uses epoch 0, so a new database still hands out tokens from 1.
INSERT INTO meta (name, value) VALUES ('boot_epoch', -1);
