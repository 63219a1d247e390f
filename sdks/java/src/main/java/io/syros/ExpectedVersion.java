package io.syros;

/**
 * The version a stream must be at for an append to succeed (optimistic concurrency); a mismatch
 * is a {@link VersionConflictException}, never a silent overwrite.
 */
public final class ExpectedVersion {
    /** Any version, including no stream. */
    public static final ExpectedVersion ANY = new ExpectedVersion("any");
    /** The stream must not exist yet. */
    public static final ExpectedVersion NO_STREAM = new ExpectedVersion("no_stream");

    private final Object value;

    private ExpectedVersion(Object value) {
        this.value = value;
    }

    /** The stream's last event has exactly {@code version}. */
    public static ExpectedVersion exact(long version) {
        if (version < 0) throw new IllegalArgumentException("a version is not negative");
        return new ExpectedVersion(version);
    }

    Object json() {
        return value;
    }

    @Override
    public String toString() {
        return String.valueOf(value);
    }
}
