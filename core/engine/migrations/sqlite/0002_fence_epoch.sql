-- Durable fencing epochs for a Redis lock store that may lose its counter (see backend/redis.rs).
INSERT INTO meta (name, value) VALUES ('fence_epoch', 0);
