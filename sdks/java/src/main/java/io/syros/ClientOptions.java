package io.syros;

import io.syros.internal.Json;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * How to reach Syros: addresses (the client fails over between them), an optional bearer token,
 * timeouts and the default lock owner. Build with {@link #builder()}.
 */
public final class ClientOptions {
    private final List<String> addresses;
    private final String authToken;
    private final String owner;
    private final Duration connectTimeout;
    private final Duration callTimeout;
    private final Duration keepaliveInterval;

    private ClientOptions(Builder b) {
        this.addresses = List.copyOf(b.addresses);
        this.authToken = b.authToken;
        this.owner = b.owner;
        this.connectTimeout = b.connectTimeout;
        this.callTimeout = b.callTimeout;
        this.keepaliveInterval = b.keepaliveInterval;
    }

    /** A builder with the client core's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** The {@code host:port} addresses. */
    public List<String> addresses() {
        return addresses;
    }

    String toJson() {
        return Json.obj()
                .put("addresses", addresses)
                .put("auth_token", authToken)
                .put("owner", owner)
                .put("connect_timeout_ms", connectTimeout == null ? null : connectTimeout.toMillis())
                .put("call_timeout_ms", callTimeout == null ? null : callTimeout.toMillis())
                .put("keepalive_interval_ms", keepaliveInterval == null ? null : keepaliveInterval.toMillis())
                .toString();
    }

    /** Builds {@link ClientOptions}. */
    public static final class Builder {
        private final List<String> addresses = new ArrayList<>();
        private String authToken;
        private String owner;
        private Duration connectTimeout;
        private Duration callTimeout;
        private Duration keepaliveInterval;

        private Builder() {}

        /** Add a {@code host:port} gRPC address (call again for fail-over addresses). */
        public Builder address(String address) {
            addresses.add(address);
            return this;
        }

        /** The bearer token sent with every call (change it later with {@link SyrosClient#setAuthToken}). */
        public Builder authToken(String token) {
            this.authToken = token;
            return this;
        }

        /** The default lock owner (default {@code syros-<pid>-<random>}). */
        public Builder owner(String owner) {
            this.owner = owner;
            return this;
        }

        /** Limit for establishing a connection (default 5 s). */
        public Builder connectTimeout(Duration timeout) {
            this.connectTimeout = timeout;
            return this;
        }

        /** Limit for one attempt of a unary call (default 10 s). */
        public Builder callTimeout(Duration timeout) {
            this.callTimeout = timeout;
            return this;
        }

        /** HTTP/2 keepalive interval ({@link Duration#ZERO}: off). */
        public Builder keepaliveInterval(Duration interval) {
            this.keepaliveInterval = interval;
            return this;
        }

        /** The options. */
        public ClientOptions build() {
            if (addresses.isEmpty()) throw new IllegalArgumentException("at least one address is needed");
            return new ClientOptions(this);
        }
    }
}
