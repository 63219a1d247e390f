package io.syros;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every error of the Syros client: a stable {@link #code()} of the shared vocabulary, whether
 * retrying may help ({@link #isRetryable()}), a message and structured {@link #details()}
 * ({@code holder_owner}, {@code grpc_code}, {@code attempts}, ...). Each code has its own
 * subclass ({@link LockTimeoutException}, {@link VersionConflictException},
 * {@link UnavailableException}, ...), so callers catch the kind they handle. Unchecked.
 */
public class SyrosException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Every code, in the client core's order (one subclass each). */
    public static final List<String> CODES = List.of("invalid_argument", "not_found", "lock_not_held", "version_conflict", "payload_too_large", "unimplemented", "unavailable", "internal", "outcome_unknown", "lock_timeout", "deadline_exceeded", "cancelled", "unauthenticated", "permission_denied", "callback_failed");

    private final String code;
    private final boolean retryable;
    private final Map<String, String> details;

    /** An error of {@code code} (prefer the subclass of the code). */
    public SyrosException(String code, String message, boolean retryable, Map<String, String> details) {
        super(code + ": " + message);
        this.code = code;
        this.retryable = retryable;
        this.details = details == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(details));
    }

    /** The stable snake_case code ({@code lock_timeout}, {@code version_conflict}, ...). */
    public String code() {
        return code;
    }

    /** Whether the same request may succeed if sent again later. */
    public boolean isRetryable() {
        return retryable;
    }

    /** Structured context, by name. */
    public Map<String, String> details() {
        return details;
    }

    /** The exception of the class of {@code code}. */
    public static SyrosException of(String code, String message, boolean retryable, Map<String, String> details) {
        return switch (code) {
            case "invalid_argument" -> new InvalidArgumentException(message, retryable, details);
            case "not_found" -> new NotFoundException(message, retryable, details);
            case "lock_not_held" -> new LockNotHeldException(message, retryable, details);
            case "version_conflict" -> new VersionConflictException(message, retryable, details);
            case "payload_too_large" -> new PayloadTooLargeException(message, retryable, details);
            case "unimplemented" -> new UnimplementedException(message, retryable, details);
            case "unavailable" -> new UnavailableException(message, retryable, details);
            case "internal" -> new InternalException(message, retryable, details);
            case "outcome_unknown" -> new OutcomeUnknownException(message, retryable, details);
            case "lock_timeout" -> new LockTimeoutException(message, retryable, details);
            case "deadline_exceeded" -> new DeadlineExceededException(message, retryable, details);
            case "cancelled" -> new CancelledException(message, retryable, details);
            case "unauthenticated" -> new UnauthenticatedException(message, retryable, details);
            case "permission_denied" -> new PermissionDeniedException(message, retryable, details);
            case "callback_failed" -> new CallbackFailedException(message, retryable, details);
            default -> new SyrosException(code, message, retryable, details);
        };
    }

    /** From the JSON error record of the JNI library ({@code code, retryable, message, details}). */
    static SyrosException fromRecord(Map<String, Object> record) {
        Map<String, String> details = new LinkedHashMap<>();
        Object raw = record.get("details");
        if (raw instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> entry : map.entrySet()) details.put(String.valueOf(entry.getKey()), String.valueOf(entry.getValue()));
        }
        return of(String.valueOf(record.get("code")), String.valueOf(record.get("message")),
                Boolean.TRUE.equals(record.get("retryable")), details);
    }

    /** Internal: {@link #fromRecord} for the bridge. */
    public static SyrosException fromRecordJson(Map<String, Object> record) {
        return fromRecord(record);
    }
}
