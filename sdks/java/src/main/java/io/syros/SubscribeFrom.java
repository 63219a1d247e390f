package io.syros;

/** Where a subscription starts. */
public final class SubscribeFrom {
    /** From the first event. */
    public static final SubscribeFrom START = new SubscribeFrom("start");
    /** Only events appended from now on. */
    public static final SubscribeFrom END = new SubscribeFrom("end");

    private final Object value;

    private SubscribeFrom(Object value) {
        this.value = value;
    }

    /** From this version (one stream) or global position (all streams), inclusive. */
    public static SubscribeFrom at(long position) {
        return new SubscribeFrom(position);
    }

    Object json() {
        return value;
    }
}
