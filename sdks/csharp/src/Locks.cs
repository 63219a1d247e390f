using System;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    /// <summary>How to acquire a lock.</summary>
    public sealed class LockOptions
    {
        /// <summary>The lease's time to live (default 30 s); the core renews it at about a third of it.</summary>
        public TimeSpan Ttl { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>How long <see cref="SyrosClient.LockAsync"/> waits while the key is held (default 30 s; zero = try once).</summary>
        public TimeSpan Wait { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>The holder's name (null = the client's owner).</summary>
        public string Owner { get; set; }
        /// <summary>Renew in the background (default true); false: the lease ends after <see cref="Ttl"/>.</summary>
        public bool AutoRenew { get; set; } = true;

        internal byte[] Record(bool wait)
        {
            return Json<LockRequestRecord>.Write(new LockRequestRecord
            {
                TtlMs = SyrosClient.Millis(Ttl) ?? 0,
                WaitMs = wait ? SyrosClient.Millis(Wait) ?? 0 : 0,
                Owner = Owner,
                AutoRenew = AutoRenew,
            });
        }
    }

    [DataContract]
    internal sealed class LockRequestRecord
    {
        [DataMember(Name = "ttl_ms", Order = 0)] public ulong TtlMs;
        [DataMember(Name = "wait_ms", Order = 1)] public ulong WaitMs;
        [DataMember(Name = "owner", EmitDefaultValue = false, Order = 2)] public string Owner;
        [DataMember(Name = "auto_renew", Order = 3)] public bool AutoRenew;
    }

    [DataContract]
    internal sealed class LeaseRecord
    {
        [DataMember(Name = "lease_id")] public string LeaseId;
        [DataMember(Name = "key")] public string Key;
        [DataMember(Name = "owner")] public string Owner;
        [DataMember(Name = "fencing_token")] public ulong FencingToken;
        [DataMember(Name = "acquired_at_ms")] public long AcquiredAtMs;
        [DataMember(Name = "expires_at_ms")] public long ExpiresAtMs;
        [DataMember(Name = "ttl_ms")] public ulong? TtlMs;
    }

    /// <summary>A lease as the server granted (or last renewed) it.</summary>
    public sealed class LeaseInfo
    {
        /// <summary>Names the lease in renewals and releases.</summary>
        public string LeaseId { get; private set; }
        /// <summary>The locked key.</summary>
        public string Key { get; private set; }
        /// <summary>Who holds it.</summary>
        public string Owner { get; private set; }
        /// <summary>Strictly increasing for every lease granted: pass it to the protected resource, which refuses a smaller one.</summary>
        public ulong FencingToken { get; private set; }
        /// <summary>When it was granted (server clock).</summary>
        public DateTimeOffset AcquiredAt { get; private set; }
        /// <summary>When it expires unless renewed (server clock).</summary>
        public DateTimeOffset ExpiresAt { get; private set; }

        internal static LeaseInfo From(LeaseRecord r)
        {
            if (r == null) return null;
            return new LeaseInfo
            {
                LeaseId = r.LeaseId,
                Key = r.Key,
                Owner = r.Owner,
                FencingToken = r.FencingToken,
                AcquiredAt = DateTimeOffset.FromUnixTimeMilliseconds(r.AcquiredAtMs),
                ExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(r.ExpiresAtMs),
            };
        }
    }

    /// <summary>How a lease ended (<see cref="Lease.WaitEndAsync"/>).</summary>
    public enum LeaseEnd
    {
        /// <summary>Still held when the wait's timeout passed.</summary>
        TimedOut,
        /// <summary>Released by its holder.</summary>
        Released,
        /// <summary>Lost: expired, taken over, or the server could not be reached past the TTL.</summary>
        Lost,
    }

    /// <summary>
    /// A held lock, renewed in the background until released or lost. Dispose releases it (in
    /// the background) if it is still held.
    /// </summary>
    public sealed class Lease : IDisposable
    {
        private readonly LeaseHandle handle = new LeaseHandle();
        private readonly object watchLock = new object();
        private CancellationTokenSource lost;

        internal Lease(CallResult result)
        {
            handle.Adopt(result.Lease);
            result.Lease = IntPtr.Zero;
            Info = LeaseInfo.From(result.Decode<LeaseRecord>());
        }

        /// <summary>The lease as granted.</summary>
        public LeaseInfo Info { get; private set; }
        /// <summary>The locked key.</summary>
        public string Key { get { return Info.Key; } }
        /// <summary>The fencing token: pass it with every write the lock protects.</summary>
        public ulong FencingToken { get { return Info.FencingToken; } }
        /// <summary>Whether the lease was lost (expired, taken over, server gone past the TTL).</summary>
        public bool IsLost { get { return !handle.IsClosed && NativeMethods.syros_lease_is_lost(handle); } }
        /// <summary>Whether the lease is still ours: neither released nor lost.</summary>
        public bool IsHeld { get { return !handle.IsClosed && NativeMethods.syros_lease_is_held(handle); } }

        /// <summary>
        /// Cancelled when the lease is lost (never when it is released): pass it to the protected
        /// work so that it stops once the lock no longer protects it.
        /// </summary>
        public CancellationToken Lost
        {
            get
            {
                lock (watchLock)
                {
                    if (lost == null)
                    {
                        lost = new CancellationTokenSource();
                        var source = lost;
                        Task.Run(() => WatchAsync(source));
                    }
                    return lost.Token;
                }
            }
        }

        private async Task WatchAsync(CancellationTokenSource source)
        {
            try
            {
                if (await WaitEndAsync(null).ConfigureAwait(false) == LeaseEnd.Lost) source.Cancel();
            }
            catch (SyrosException)
            {
                // The handle was freed or the runtime stopped: nothing protects the work any more.
                if (!NativeMethods.syros_lease_is_held(handle)) source.Cancel();
            }
            catch (ObjectDisposedException) { }
        }

        private Task<CallResult> Call(Func<CancelHandle, NativeCallback, UIntPtr, int> start, CancellationToken token)
        {
            return Native.CallAsync((c, cb, ud) => start(c, cb, ud), token);
        }

        /// <summary>Releases the lease (releasing again does nothing).</summary>
        public Task ReleaseAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Call((c, cb, ud) => NativeMethods.syros_lease_release(handle, c, cb, ud), cancellationToken);
        }

        /// <summary>Extends the lease now.</summary>
        /// <exception cref="LockNotHeldException">it was lost or released.</exception>
        public async Task<LeaseInfo> RenewAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            var result = await Call((c, cb, ud) => NativeMethods.syros_lease_renew(handle, c, cb, ud), cancellationToken).ConfigureAwait(false);
            return LeaseInfo.From(result.Decode<LeaseRecord>());
        }

        /// <summary>Waits until the lease ends, at most <paramref name="timeout"/> (null = no limit).</summary>
        public async Task<LeaseEnd> WaitEndAsync(TimeSpan? timeout, CancellationToken cancellationToken = default(CancellationToken))
        {
            long ms = timeout == null ? -1 : (long)(SyrosClient.Millis(timeout) ?? 0);
            var result = await Call((c, cb, ud) => NativeMethods.syros_lease_wait_end(handle, ms, c, cb, ud), cancellationToken).ConfigureAwait(false);
            switch (result.Decode<string>())
            {
                case "lost": return LeaseEnd.Lost;
                case "released": return LeaseEnd.Released;
                default: return LeaseEnd.TimedOut;
            }
        }

        /// <summary>Frees the lease; one still held is released in the background.</summary>
        public void Dispose() { handle.Dispose(); }

        /// <summary>Releases the lease, then frees it (for <c>await using</c>-style code).</summary>
        public async Task DisposeAsync()
        {
            if (handle.IsClosed) return;
            try
            {
                await ReleaseAsync().ConfigureAwait(false);
            }
            finally
            {
                handle.Dispose();
            }
        }
    }
}
