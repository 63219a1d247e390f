using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    /// <summary>How to reach Syros.</summary>
    public sealed class ClientOptions
    {
        /// <summary>Creates options with no address (add at least one).</summary>
        public ClientOptions() { Addresses = new List<string>(); }

        /// <summary>gRPC addresses (<c>host:port</c>); the client fails over between them.</summary>
        public IList<string> Addresses { get; private set; }
        /// <summary>The bearer token sent with every call (null = none).</summary>
        public string AuthToken { get; set; }
        /// <summary>The default lock owner (null = the core's: host and process).</summary>
        public string Owner { get; set; }
        /// <summary>How long to wait for a connection (null = the core's default).</summary>
        public TimeSpan? ConnectTimeout { get; set; }
        /// <summary>Per-call timeout of unary calls (null = the core's default).</summary>
        public TimeSpan? CallTimeout { get; set; }
        /// <summary>HTTP/2 keepalive interval (null = the core's default, <see cref="TimeSpan.Zero"/> = off).</summary>
        public TimeSpan? KeepaliveInterval { get; set; }
    }

    [DataContract]
    internal sealed class ClientConfigRecord
    {
        [DataMember(Name = "addresses", Order = 0)] public List<string> Addresses;
        [DataMember(Name = "connect_timeout_ms", EmitDefaultValue = false, Order = 1)] public ulong? ConnectTimeoutMs;
        [DataMember(Name = "call_timeout_ms", EmitDefaultValue = false, Order = 2)] public ulong? CallTimeoutMs;
        [DataMember(Name = "owner", EmitDefaultValue = false, Order = 3)] public string Owner;
        [DataMember(Name = "auth_token", EmitDefaultValue = false, Order = 4)] public string AuthToken;
        [DataMember(Name = "keepalive_interval_ms", EmitDefaultValue = false, Order = 5)] public ulong? KeepaliveIntervalMs;
    }

    [DataContract]
    internal sealed class StatsRecord
    {
        [DataMember(Name = "calls")] public ulong Calls;
        [DataMember(Name = "attempts")] public ulong Attempts;
        [DataMember(Name = "retries")] public ulong Retries;
        [DataMember(Name = "failovers")] public ulong Failovers;
    }

    /// <summary>Counters of the client's calls.</summary>
    public sealed class ClientStats
    {
        /// <summary>Calls made.</summary>
        public ulong Calls { get; internal set; }
        /// <summary>Attempts sent (retries included).</summary>
        public ulong Attempts { get; internal set; }
        /// <summary>Retries.</summary>
        public ulong Retries { get; internal set; }
        /// <summary>Moves to another address.</summary>
        public ulong Failovers { get; internal set; }
    }

    /// <summary>
    /// A connection to Syros: locks on the client itself, and <see cref="Cache"/>,
    /// <see cref="Events"/>, <see cref="Sagas"/> and <see cref="Worker"/>. Thread-safe; dispose it
    /// when done (the last client disposed shuts the core runtime down, so the process can exit).
    /// </summary>
    public sealed class SyrosClient : IDisposable
    {
        private static readonly object LiveLock = new object();
        private static int live;
        internal readonly ClientHandle Handle;
        private int disposed;

        private SyrosClient(ClientHandle handle)
        {
            Handle = handle;
            Cache = new CacheClient(this);
            Events = new EventsClient(this);
            Sagas = new SagasClient(this);
        }

        /// <summary>The tagged cache.</summary>
        public CacheClient Cache { get; private set; }
        /// <summary>The event store.</summary>
        public EventsClient Events { get; private set; }
        /// <summary>Sagas (start, inspect, cancel, wait).</summary>
        public SagasClient Sagas { get; private set; }

        /// <summary>Creates a client and waits until it is connected.</summary>
        /// <exception cref="UnavailableException">no address answered within the connect timeout.</exception>
        public static async Task<SyrosClient> ConnectAsync(ClientOptions options, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (options == null) throw new ArgumentNullException("options");
            var record = new ClientConfigRecord
            {
                Addresses = new List<string>(options.Addresses),
                ConnectTimeoutMs = Millis(options.ConnectTimeout),
                CallTimeoutMs = Millis(options.CallTimeout),
                Owner = options.Owner,
                AuthToken = options.AuthToken,
                KeepaliveIntervalMs = Millis(options.KeepaliveInterval),
            };
            var config = Json<ClientConfigRecord>.Write(record);
            IntPtr pointer;
            NativeBuffer error;
            if (NativeMethods.syros_client_new(config, Native.Len(config), out pointer, out error) != NativeMethods.Ok)
            {
                Native.Sync((out NativeBuffer b) => { b = error; return 1; });
            }
            var handle = new ClientHandle();
            handle.Adopt(pointer);
            lock (LiveLock) live++;
            var client = new SyrosClient(handle);
            try
            {
                await Native.CallAsync((c, cb, ud) => NativeMethods.syros_client_connect(handle, c, cb, ud), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                client.Dispose();
                throw;
            }
            return client;
        }

        internal static ulong? Millis(TimeSpan? span)
        {
            if (span == null) return null;
            return span.Value <= TimeSpan.Zero ? 0UL : (ulong)Math.Ceiling(span.Value.TotalMilliseconds);
        }

        internal Task<CallResult> Call(Func<CancelHandle, NativeCallback, UIntPtr, int> start, CancellationToken token)
        {
            return Native.CallAsync((c, cb, ud) => start(c, cb, ud), token);
        }

        /// <summary>The default lock owner of this client.</summary>
        public string Owner
        {
            get { return Json<string>.Read(Native.Sync((out NativeBuffer b) => NativeMethods.syros_client_owner(Handle, out b))); }
        }

        /// <summary>Counters of this client's calls so far.</summary>
        public ClientStats Stats
        {
            get
            {
                var s = Json<StatsRecord>.Read(Native.Sync((out NativeBuffer b) => NativeMethods.syros_client_stats(Handle, out b)));
                return new ClientStats { Calls = s.Calls, Attempts = s.Attempts, Retries = s.Retries, Failovers = s.Failovers };
            }
        }

        /// <summary>Replaces the bearer token sent with later calls (null = none).</summary>
        public void SetAuthToken(string token)
        {
            var bytes = Native.Utf8(token);
            Native.Sync((out NativeBuffer b) => NativeMethods.syros_client_set_auth_token(Handle, bytes, Native.Len(bytes), out b));
        }

        /// <summary>Asks the server whether it is serving.</summary>
        public Task CheckHealthAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Call((c, cb, ud) => NativeMethods.syros_client_check_health(Handle, c, cb, ud), cancellationToken);
        }

        /// <summary>
        /// Acquires <paramref name="key"/>, waiting up to <see cref="LockOptions.Wait"/> while someone
        /// else holds it. The lease is renewed in the background until released or lost.
        /// </summary>
        /// <exception cref="LockTimeoutException">still held by someone else when the wait ended (<c>Details["holder_owner"]</c>).</exception>
        /// <exception cref="OperationCanceledException">the token was cancelled first; no lease is left behind.</exception>
        public async Task<Lease> LockAsync(string key, LockOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            var request = (options ?? new LockOptions()).Record(true);
            var k = Native.Utf8(key);
            var result = await Call((c, cb, ud) => NativeMethods.syros_client_lock(Handle, k, Native.Len(k), request, Native.Len(request), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return new Lease(result);
        }

        /// <summary>Acquires <paramref name="key"/> only if it is free now; null when someone else holds it.</summary>
        public async Task<Lease> TryLockAsync(string key, LockOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            var request = (options ?? new LockOptions()).Record(false);
            var k = Native.Utf8(key);
            var result = await Call((c, cb, ud) => NativeMethods.syros_client_try_lock(Handle, k, Native.Len(k), request, Native.Len(request), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return result.Lease == IntPtr.Zero ? null : new Lease(result);
        }

        /// <summary>The lease holding <paramref name="key"/>, or null when it is free.</summary>
        public async Task<LeaseInfo> LockStatusAsync(string key, CancellationToken cancellationToken = default(CancellationToken))
        {
            var k = Native.Utf8(key);
            var result = await Call((c, cb, ud) => NativeMethods.syros_client_lock_status(Handle, k, Native.Len(k), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return LeaseInfo.From(result.Decode<LeaseRecord>());
        }

        /// <summary>Held locks whose key starts with <paramref name="prefix"/> (<paramref name="limit"/> 0 = the server's default).</summary>
        public async Task<IReadOnlyList<LeaseInfo>> ListLocksAsync(string prefix = "", int limit = 0, CancellationToken cancellationToken = default(CancellationToken))
        {
            var p = Native.Utf8(prefix ?? "");
            var result = await Call((c, cb, ud) => NativeMethods.syros_client_list_locks(Handle, p, Native.Len(p), (uint)Math.Max(0, limit), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var list = new List<LeaseInfo>();
            foreach (var r in result.Decode<List<LeaseRecord>>() ?? new List<LeaseRecord>()) list.Add(LeaseInfo.From(r));
            return list;
        }

        /// <summary>Administrative: drops whatever lease holds <paramref name="key"/>; returns it, or null.</summary>
        public async Task<LeaseInfo> ForceReleaseAsync(string key, CancellationToken cancellationToken = default(CancellationToken))
        {
            var k = Native.Utf8(key);
            var result = await Call((c, cb, ud) => NativeMethods.syros_client_force_release(Handle, k, Native.Len(k), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return LeaseInfo.From(result.Decode<LeaseRecord>());
        }

        /// <summary>A saga step runner for <paramref name="service"/>: register handlers, then <see cref="SagaWorker.RunAsync"/>.</summary>
        public SagaWorker Worker(string service, int maxConcurrent = 16)
        {
            return new SagaWorker(this, service, maxConcurrent <= 0 ? 16 : maxConcurrent);
        }

        /// <summary>
        /// Refuses later calls and frees the client. Leases, subscriptions and workers it handed
        /// out keep working until released, closed or stopped. The last client disposed in the
        /// process shuts the core runtime down (Mono would otherwise wait for its threads at exit).
        /// </summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            if (!Handle.IsClosed) NativeMethods.syros_client_close(Handle);
            Handle.Dispose();
            bool last;
            lock (LiveLock) last = --live == 0;
            if (last) SyrosRuntime.Shutdown(TimeSpan.FromSeconds(2));
        }

        /// <summary>Same as <see cref="Dispose"/> (for <c>await using</c>-style code).</summary>
        public Task DisposeAsync()
        {
            Dispose();
            return Task.CompletedTask;
        }
    }

    /// <summary>The core runtime shared by every client of the process.</summary>
    public static class SyrosRuntime
    {
        /// <summary>
        /// Stops the core runtime, waiting up to <paramref name="timeout"/>: background renewals,
        /// subscriptions and workers end, pending calls fail with <see cref="CancelledException"/>.
        /// The next call starts a new runtime. Disposing the last client does this already.
        /// </summary>
        public static void Shutdown(TimeSpan timeout)
        {
            NativeMethods.syros_shutdown((ulong)Math.Max(0, timeout.TotalMilliseconds));
        }

        /// <summary>Native handles not yet freed (for leak tests).</summary>
        public static long LiveHandles { get { return NativeMethods.syros_live_handles(); } }

        /// <summary>Native calls whose result has not arrived yet (for leak tests).</summary>
        public static long PendingCalls { get { return NativeMethods.syros_pending_calls(); } }
    }
}
