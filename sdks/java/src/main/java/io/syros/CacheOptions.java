package io.syros;

import java.time.Duration;
import java.util.List;

/**
 * How a cache value is stored: an optional time to live and tags for {@link Cache#invalidateTag}.
 *
 * @param ttl  time to live; null = no expiry
 * @param tags tags to invalidate it by
 */
public record CacheOptions(Duration ttl, List<String> tags) {
    /** No expiry, no tags. */
    public static final CacheOptions NONE = new CacheOptions(null, List.of());

    /** Normalises null tags to none. */
    public CacheOptions {
        tags = tags == null ? List.of() : List.copyOf(tags);
    }

    /** Expiring after {@code ttl}. */
    public static CacheOptions ttl(Duration ttl) {
        return new CacheOptions(ttl, List.of());
    }

    /** The same, with these tags. */
    public CacheOptions tags(String... tags) {
        return new CacheOptions(ttl, List.of(tags));
    }
}
