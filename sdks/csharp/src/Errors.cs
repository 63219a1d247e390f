// The shared error vocabulary (ErrorKind::ALL of the binding API): one exception class per code.
using System;
using System.Collections.Generic;
using System.Runtime.Serialization;

namespace Syros
{
    [DataContract]
    internal sealed class ErrorRecord
    {
        [DataMember(Name = "code")] public string Code;
        [DataMember(Name = "retryable")] public bool Retryable;
        [DataMember(Name = "message")] public string Message;
        [DataMember(Name = "details")] public Dictionary<string, string> Details;
    }

    /// <summary>
    /// A failure reported by Syros. <see cref="Code"/> is the stable code of the shared vocabulary
    /// (docs/errors.md); each code has its own subclass.
    /// </summary>
    public class SyrosException : Exception
    {
        private static readonly IReadOnlyDictionary<string, string> NoDetails = new Dictionary<string, string>();

        /// <summary>Creates an error with the given code.</summary>
        public SyrosException(string code, string message, bool isRetryable, IDictionary<string, string> details)
            : base(message)
        {
            Code = code;
            IsRetryable = isRetryable;
            Details = details == null ? NoDetails : new Dictionary<string, string>(details);
        }

        /// <summary>The stable error code (<c>lock_timeout</c>, <c>version_conflict</c>, ...).</summary>
        public string Code { get; private set; }

        /// <summary>Whether trying again may succeed.</summary>
        public bool IsRetryable { get; private set; }

        /// <summary>Structured details (for example <c>holder_owner</c> of a lock timeout).</summary>
        public IReadOnlyDictionary<string, string> Details { get; private set; }

        internal static SyrosException Closed()
        {
            return new CancelledException("the client (or the object) was closed", false, null);
        }

        internal static SyrosException FromJson(byte[] json)
        {
            var record = Json<ErrorRecord>.Read(json) ?? new ErrorRecord { Code = "internal", Message = "an empty error record" };
            return Create(record.Code, record.Message, record.Retryable, record.Details);
        }

        /// <summary>The exception of the class for <paramref name="code"/> (unknown codes: <see cref="SyrosException"/>).</summary>
        public static SyrosException Create(string code, string message, bool isRetryable, IDictionary<string, string> details)
        {
            switch (code)
            {
                case "invalid_argument": return new InvalidArgumentException(message, isRetryable, details);
                case "not_found": return new NotFoundException(message, isRetryable, details);
                case "lock_not_held": return new LockNotHeldException(message, isRetryable, details);
                case "version_conflict": return new VersionConflictException(message, isRetryable, details);
                case "payload_too_large": return new PayloadTooLargeException(message, isRetryable, details);
                case "unimplemented": return new UnimplementedException(message, isRetryable, details);
                case "unavailable": return new UnavailableException(message, isRetryable, details);
                case "internal": return new InternalException(message, isRetryable, details);
                case "outcome_unknown": return new OutcomeUnknownException(message, isRetryable, details);
                case "lock_timeout": return new LockTimeoutException(message, isRetryable, details);
                case "deadline_exceeded": return new DeadlineExceededException(message, isRetryable, details);
                case "cancelled": return new CancelledException(message, isRetryable, details);
                case "unauthenticated": return new UnauthenticatedException(message, isRetryable, details);
                case "permission_denied": return new PermissionDeniedException(message, isRetryable, details);
                case "callback_failed": return new CallbackFailedException(message, isRetryable, details);
                default: return new SyrosException(code, message, isRetryable, details);
            }
        }
    }

    /// <summary>A bad argument (<c>invalid_argument</c>).</summary>
    public class InvalidArgumentException : SyrosException { /** <summary>Creates it.</summary> */ public InvalidArgumentException(string m, bool r, IDictionary<string, string> d) : base("invalid_argument", m, r, d) { } }
    /// <summary>Nothing by that name (<c>not_found</c>).</summary>
    public class NotFoundException : SyrosException { /** <summary>Creates it.</summary> */ public NotFoundException(string m, bool r, IDictionary<string, string> d) : base("not_found", m, r, d) { } }
    /// <summary>The lease is no longer held (<c>lock_not_held</c>).</summary>
    public class LockNotHeldException : SyrosException { /** <summary>Creates it.</summary> */ public LockNotHeldException(string m, bool r, IDictionary<string, string> d) : base("lock_not_held", m, r, d) { } }
    /// <summary>The stream was not at the expected version (<c>version_conflict</c>).</summary>
    public class VersionConflictException : SyrosException { /** <summary>Creates it.</summary> */ public VersionConflictException(string m, bool r, IDictionary<string, string> d) : base("version_conflict", m, r, d) { } }
    /// <summary>A value over the size limit (<c>payload_too_large</c>).</summary>
    public class PayloadTooLargeException : SyrosException { /** <summary>Creates it.</summary> */ public PayloadTooLargeException(string m, bool r, IDictionary<string, string> d) : base("payload_too_large", m, r, d) { } }
    /// <summary>The server does not offer this (<c>unimplemented</c>).</summary>
    public class UnimplementedException : SyrosException { /** <summary>Creates it.</summary> */ public UnimplementedException(string m, bool r, IDictionary<string, string> d) : base("unimplemented", m, r, d) { } }
    /// <summary>No server could be reached (<c>unavailable</c>).</summary>
    public class UnavailableException : SyrosException { /** <summary>Creates it.</summary> */ public UnavailableException(string m, bool r, IDictionary<string, string> d) : base("unavailable", m, r, d) { } }
    /// <summary>A defect (<c>internal</c>).</summary>
    public class InternalException : SyrosException { /** <summary>Creates it.</summary> */ public InternalException(string m, bool r, IDictionary<string, string> d) : base("internal", m, r, d) { } }
    /// <summary>The request may or may not have been applied (<c>outcome_unknown</c>).</summary>
    public class OutcomeUnknownException : SyrosException { /** <summary>Creates it.</summary> */ public OutcomeUnknownException(string m, bool r, IDictionary<string, string> d) : base("outcome_unknown", m, r, d) { } }
    /// <summary>The lock was still held when the wait ended (<c>lock_timeout</c>; details name the holder).</summary>
    public class LockTimeoutException : SyrosException { /** <summary>Creates it.</summary> */ public LockTimeoutException(string m, bool r, IDictionary<string, string> d) : base("lock_timeout", m, r, d) { } }
    /// <summary>The call's deadline passed (<c>deadline_exceeded</c>).</summary>
    public class DeadlineExceededException : SyrosException { /** <summary>Creates it.</summary> */ public DeadlineExceededException(string m, bool r, IDictionary<string, string> d) : base("deadline_exceeded", m, r, d) { } }
    /// <summary>The call was cancelled by Syros itself: the client or object was closed, or the runtime shut down (<c>cancelled</c>). A cancelled <see cref="System.Threading.CancellationToken"/> throws <see cref="OperationCanceledException"/> instead.</summary>
    public class CancelledException : SyrosException { /** <summary>Creates it.</summary> */ public CancelledException(string m, bool r, IDictionary<string, string> d) : base("cancelled", m, r, d) { } }
    /// <summary>No valid credentials (<c>unauthenticated</c>).</summary>
    public class UnauthenticatedException : SyrosException { /** <summary>Creates it.</summary> */ public UnauthenticatedException(string m, bool r, IDictionary<string, string> d) : base("unauthenticated", m, r, d) { } }
    /// <summary>Not allowed (<c>permission_denied</c>).</summary>
    public class PermissionDeniedException : SyrosException { /** <summary>Creates it.</summary> */ public PermissionDeniedException(string m, bool r, IDictionary<string, string> d) : base("permission_denied", m, r, d) { } }
    /// <summary>A host computation failed (<c>callback_failed</c>).</summary>
    public class CallbackFailedException : SyrosException { /** <summary>Creates it.</summary> */ public CallbackFailedException(string m, bool r, IDictionary<string, string> d) : base("callback_failed", m, r, d) { } }
}
