using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    /// <summary>An event to append.</summary>
    public sealed class NewEvent
    {
        /// <summary>An event of <paramref name="type"/> with <paramref name="data"/> (JSON-encoded by <see cref="JsonValue.Encode"/>).</summary>
        public NewEvent(string type, object data) { Type = type; Data = data; }
        /// <summary>The event type.</summary>
        public string Type { get; set; }
        /// <summary>The payload (any value <see cref="JsonValue.Encode"/> takes; <see cref="RawJson"/> as it is).</summary>
        public object Data { get; set; }
        /// <summary>Metadata (null = none).</summary>
        public object Metadata { get; set; }
        /// <summary>An id for idempotent appends (null = generated).</summary>
        public string EventId { get; set; }
    }

    [DataContract]
    internal sealed class NewEventRecord
    {
        [DataMember(Name = "event_type", Order = 0)] public string EventType;
        [DataMember(Name = "data_json", Order = 1)] public string DataJson;
        [DataMember(Name = "event_id", EmitDefaultValue = false, Order = 2)] public string EventId;
        [DataMember(Name = "metadata_json", EmitDefaultValue = false, Order = 3)] public string MetadataJson;
    }

    /// <summary>The version a stream must be at for an append to apply.</summary>
    public struct ExpectedVersion
    {
        private readonly string json;
        private ExpectedVersion(string json) { this.json = json; }
        /// <summary>Append whatever the stream's version.</summary>
        public static ExpectedVersion Any { get { return new ExpectedVersion("\"any\""); } }
        /// <summary>Append only if the stream does not exist yet.</summary>
        public static ExpectedVersion NoStream { get { return new ExpectedVersion("\"no_stream\""); } }
        /// <summary>Append only if the stream's last version is <paramref name="version"/>.</summary>
        public static ExpectedVersion At(ulong version) { return new ExpectedVersion(version.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        internal byte[] Json() { return Native.Utf8(json ?? "\"any\""); }
    }

    /// <summary>Where a subscription starts.</summary>
    public struct SubscribeFrom
    {
        private readonly string json;
        private SubscribeFrom(string json) { this.json = json; }
        /// <summary>From the first event.</summary>
        public static SubscribeFrom Start { get { return new SubscribeFrom("\"start\""); } }
        /// <summary>Only events appended from now on.</summary>
        public static SubscribeFrom End { get { return new SubscribeFrom("\"end\""); } }
        /// <summary>From <paramref name="position"/>, inclusive (a stream version, or a global position for all streams).</summary>
        public static SubscribeFrom At(ulong position) { return new SubscribeFrom(position.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        internal byte[] Json() { return Native.Utf8(json ?? "\"start\""); }
    }

    [DataContract]
    internal sealed class AppendRecord
    {
        [DataMember(Name = "last_version")] public ulong LastVersion;
        [DataMember(Name = "first_position")] public ulong FirstPosition;
        [DataMember(Name = "last_position")] public ulong LastPosition;
    }

    /// <summary>What an append wrote.</summary>
    public sealed class AppendResult
    {
        /// <summary>The stream's version after the append.</summary>
        public ulong LastVersion { get; internal set; }
        /// <summary>Global position of the first event appended.</summary>
        public ulong FirstPosition { get; internal set; }
        /// <summary>Global position of the last event appended.</summary>
        public ulong LastPosition { get; internal set; }
    }

    [DataContract]
    internal sealed class EventRecord
    {
        [DataMember(Name = "stream")] public string Stream;
        [DataMember(Name = "version")] public ulong Version;
        [DataMember(Name = "global_position")] public ulong GlobalPosition;
        [DataMember(Name = "event_id")] public string EventId;
        [DataMember(Name = "event_type")] public string EventType;
        [DataMember(Name = "data_json")] public string DataJson;
        [DataMember(Name = "metadata_json")] public string MetadataJson;
        [DataMember(Name = "created_at_ms")] public long CreatedAtMs;
    }

    /// <summary>A stored event.</summary>
    public sealed class RecordedEvent
    {
        /// <summary>Its stream.</summary>
        public string Stream { get; private set; }
        /// <summary>Its version in the stream.</summary>
        public ulong Version { get; private set; }
        /// <summary>Its position over all streams.</summary>
        public ulong GlobalPosition { get; private set; }
        /// <summary>Its id.</summary>
        public string EventId { get; private set; }
        /// <summary>Its type.</summary>
        public string Type { get; private set; }
        /// <summary>Its payload as JSON text.</summary>
        public string DataJson { get; private set; }
        /// <summary>Its metadata as JSON text (null = none).</summary>
        public string MetadataJson { get; private set; }
        /// <summary>When it was stored (server clock).</summary>
        public DateTimeOffset CreatedAt { get; private set; }
        /// <summary>The payload decoded into a data contract type.</summary>
        public T Data<T>() { return JsonValue.Decode<T>(DataJson); }

        internal static RecordedEvent From(EventRecord r)
        {
            return new RecordedEvent
            {
                Stream = r.Stream,
                Version = r.Version,
                GlobalPosition = r.GlobalPosition,
                EventId = r.EventId,
                Type = r.EventType,
                DataJson = r.DataJson,
                MetadataJson = r.MetadataJson,
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAtMs),
            };
        }
    }

    /// <summary>What to read.</summary>
    public sealed class ReadOptions
    {
        /// <summary>The stream (null = all streams, by global position).</summary>
        public string Stream { get; set; }
        /// <summary>The first version (or global position) to read, inclusive (null = the first, or the newest when backwards).</summary>
        public ulong? Start { get; set; }
        /// <summary>Newest first.</summary>
        public bool Backwards { get; set; }
        /// <summary>At most this many (0 = the server's default).</summary>
        public int Limit { get; set; }
    }

    [DataContract]
    internal sealed class ReadRequestRecord
    {
        [DataMember(Name = "stream", EmitDefaultValue = false, Order = 0)] public string Stream;
        [DataMember(Name = "start", EmitDefaultValue = false, Order = 1)] public ulong? Start;
        [DataMember(Name = "backwards", Order = 2)] public bool Backwards;
        [DataMember(Name = "limit", Order = 3)] public uint Limit;
    }

    [DataContract]
    internal sealed class ReadRecord
    {
        [DataMember(Name = "events")] public List<EventRecord> Events;
        [DataMember(Name = "last")] public ulong? Last;
        [DataMember(Name = "exists")] public bool Exists;
    }

    /// <summary>Events read.</summary>
    public sealed class ReadResult
    {
        /// <summary>The events, in the order asked for.</summary>
        public IReadOnlyList<RecordedEvent> Events { get; internal set; }
        /// <summary>The stream's last version (or the last global position), null when empty.</summary>
        public ulong? Last { get; internal set; }
        /// <summary>Whether the stream exists.</summary>
        public bool Exists { get; internal set; }
    }

    [DataContract]
    internal sealed class SubscriptionItemRecord
    {
        [DataMember(Name = "kind")] public string Kind;
        [DataMember(Name = "event")] public EventRecord Event;
    }

    /// <summary>The event store (<see cref="SyrosClient.Events"/>).</summary>
    public sealed class EventsClient
    {
        private readonly SyrosClient client;

        internal EventsClient(SyrosClient client) { this.client = client; }

        /// <summary>Appends <paramref name="events"/> to <paramref name="stream"/> if it is at <paramref name="expected"/>.</summary>
        /// <exception cref="VersionConflictException">the stream was at another version.</exception>
        public async Task<AppendResult> AppendAsync(string stream, IEnumerable<NewEvent> events, ExpectedVersion expected = default(ExpectedVersion), CancellationToken cancellationToken = default(CancellationToken))
        {
            var records = new List<NewEventRecord>();
            foreach (var e in events)
            {
                records.Add(new NewEventRecord
                {
                    EventType = e.Type,
                    DataJson = JsonValue.Encode(e.Data),
                    EventId = e.EventId,
                    MetadataJson = e.Metadata == null ? null : JsonValue.Encode(e.Metadata),
                });
            }
            var s = Native.Utf8(stream);
            var body = Json<List<NewEventRecord>>.Write(records);
            var exp = expected.Json();
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_append(client.Handle, s, Native.Len(s), body, Native.Len(body), exp, Native.Len(exp), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var r = result.Decode<AppendRecord>();
            return new AppendResult { LastVersion = r.LastVersion, FirstPosition = r.FirstPosition, LastPosition = r.LastPosition };
        }

        /// <summary>Reads events.</summary>
        public async Task<ReadResult> ReadAsync(ReadOptions options, CancellationToken cancellationToken = default(CancellationToken))
        {
            options = options ?? new ReadOptions();
            var body = Json<ReadRequestRecord>.Write(new ReadRequestRecord
            {
                Stream = options.Stream,
                Start = options.Start ?? (options.Backwards ? (ulong?)null : 0UL),
                Backwards = options.Backwards,
                Limit = (uint)Math.Max(0, options.Limit),
            });
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_read(client.Handle, body, Native.Len(body), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var r = result.Decode<ReadRecord>();
            var list = new List<RecordedEvent>();
            foreach (var e in r.Events ?? new List<EventRecord>()) list.Add(RecordedEvent.From(e));
            return new ReadResult { Events = list, Last = r.Last, Exists = r.Exists };
        }

        /// <summary>Reads <paramref name="stream"/> forwards from its start.</summary>
        public Task<ReadResult> ReadStreamAsync(string stream, CancellationToken cancellationToken = default(CancellationToken))
        {
            return ReadAsync(new ReadOptions { Stream = stream }, cancellationToken);
        }

        /// <summary>
        /// Follows <paramref name="stream"/> (null = all streams) from <paramref name="from"/>; the
        /// core resubscribes after a server restart without losing or repeating events.
        /// </summary>
        public async Task<Subscription> SubscribeAsync(string stream, SubscribeFrom from = default(SubscribeFrom), CancellationToken cancellationToken = default(CancellationToken))
        {
            var s = Native.Utf8(stream);
            var start = from.Json();
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_subscribe(client.Handle, s, Native.Len(s), start, Native.Len(start), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return new Subscription(result);
        }
    }

    /// <summary>
    /// A live subscription. Read it with <see cref="NextAsync"/>, or with <c>await foreach</c>
    /// (C# 8: <see cref="GetAsyncEnumerator"/> follows the async enumerator pattern). Dispose closes it.
    /// </summary>
    public sealed class Subscription : IDisposable
    {
        private readonly SubscriptionHandle handle = new SubscriptionHandle();

        internal Subscription(CallResult result)
        {
            handle.Adopt(result.Subscription);
            result.Subscription = IntPtr.Zero;
        }

        /// <summary>Whether it ended (closed, or failed for good).</summary>
        public bool IsEnded { get; private set; }

        /// <summary>
        /// The next event, waiting at most <paramref name="timeout"/> (null = until one comes);
        /// null when the time passed or the subscription ended (<see cref="IsEnded"/>). The error
        /// that ended it is thrown once.
        /// </summary>
        public async Task<RecordedEvent> NextAsync(TimeSpan? timeout, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (IsEnded) return null;
            long ms = timeout == null ? -1 : (long)(SyrosClient.Millis(timeout) ?? 0);
            CallResult result;
            try
            {
                result = await Native.CallAsync((c, cb, ud) => NativeMethods.syros_subscription_next(handle, ms, c, cb, ud), cancellationToken).ConfigureAwait(false);
            }
            catch (SyrosException)
            {
                if (handle.IsClosed) { IsEnded = true; return null; }
                throw;
            }
            var item = result.Decode<SubscriptionItemRecord>();
            if (item.Kind == "event") return RecordedEvent.From(item.Event);
            if (item.Kind == "ended") IsEnded = true;
            return null;
        }

        /// <summary>Stops following (idempotent); a pending <see cref="NextAsync"/> returns null.</summary>
        public void Close()
        {
            if (!handle.IsClosed) NativeMethods.syros_subscription_close(handle);
        }

        /// <summary>Closes and frees the subscription.</summary>
        public void Dispose() { Close(); handle.Dispose(); }

        /// <summary>Same as <see cref="Dispose"/>.</summary>
        public Task DisposeAsync() { Dispose(); return Task.CompletedTask; }

        /// <summary>An async enumerator over the events until the subscription ends or the token is cancelled.</summary>
        public Enumerator GetAsyncEnumerator(CancellationToken cancellationToken = default(CancellationToken))
        {
            return new Enumerator(this, cancellationToken);
        }

        /// <summary>The async enumerator of <see cref="Subscription"/>.</summary>
        public sealed class Enumerator
        {
            private readonly Subscription subscription;
            private readonly CancellationToken token;

            internal Enumerator(Subscription subscription, CancellationToken token)
            {
                this.subscription = subscription;
                this.token = token;
            }

            /// <summary>The current event.</summary>
            public RecordedEvent Current { get; private set; }

            /// <summary>Waits for the next event; false when the subscription ended.</summary>
            public async Task<bool> MoveNextAsync()
            {
                while (true)
                {
                    var next = await subscription.NextAsync(null, token).ConfigureAwait(false);
                    if (next != null) { Current = next; return true; }
                    if (subscription.IsEnded) return false;
                }
            }

            /// <summary>Does nothing (the subscription is disposed by its owner).</summary>
            public Task DisposeAsync() { return Task.CompletedTask; }
        }
    }
}
