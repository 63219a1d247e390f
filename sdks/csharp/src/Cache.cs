using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    /// <summary>How to store a cache value.</summary>
    public sealed class CacheSetOptions
    {
        /// <summary>Time to live (null = no expiry).</summary>
        public TimeSpan? Ttl { get; set; }
        /// <summary>Tags to invalidate the value by.</summary>
        public IList<string> Tags { get; set; }

        internal static byte[] Record(CacheSetOptions options)
        {
            if (options == null) return Native.Empty;
            return Json<CacheSetRecord>.Write(new CacheSetRecord
            {
                TtlMs = SyrosClient.Millis(options.Ttl),
                Tags = options.Tags == null ? null : new List<string>(options.Tags),
            });
        }
    }

    [DataContract]
    internal sealed class CacheSetRecord
    {
        [DataMember(Name = "ttl_ms", EmitDefaultValue = false, Order = 0)] public ulong? TtlMs;
        [DataMember(Name = "tags", EmitDefaultValue = false, Order = 1)] public List<string> Tags;
    }

    [DataContract]
    internal sealed class CacheEntryRecord
    {
        [DataMember(Name = "value")] public string Value;
        [DataMember(Name = "expires_at_ms")] public long? ExpiresAtMs;
        [DataMember(Name = "tags")] public List<string> Tags;
    }

    [DataContract]
    internal sealed class CacheLookupRecord
    {
        [DataMember(Name = "hit")] public string Hit;
    }

    /// <summary>A cached value.</summary>
    public sealed class CacheEntry
    {
        /// <summary>The bytes stored.</summary>
        public byte[] Value { get; internal set; }
        /// <summary>The value as UTF-8 text.</summary>
        public string Text { get { return Encoding.UTF8.GetString(Value); } }
        /// <summary>When it expires (null = never).</summary>
        public DateTimeOffset? ExpiresAt { get; internal set; }
        /// <summary>Its tags.</summary>
        public IReadOnlyList<string> Tags { get; internal set; }
    }

    /// <summary>The tagged cache (<see cref="SyrosClient.Cache"/>).</summary>
    public sealed class CacheClient
    {
        private readonly SyrosClient client;

        internal CacheClient(SyrosClient client) { this.client = client; }

        /// <summary>The entry under <paramref name="key"/>, or null when missing.</summary>
        public async Task<CacheEntry> GetAsync(string key, CancellationToken cancellationToken = default(CancellationToken))
        {
            var k = Native.Utf8(key);
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_cache_get(client.Handle, k, Native.Len(k), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var r = result.Decode<CacheEntryRecord>();
            if (r == null) return null;
            return new CacheEntry
            {
                Value = Convert.FromBase64String(r.Value ?? ""),
                ExpiresAt = r.ExpiresAtMs == null ? (DateTimeOffset?)null : DateTimeOffset.FromUnixTimeMilliseconds(r.ExpiresAtMs.Value),
                Tags = r.Tags ?? new List<string>(),
            };
        }

        /// <summary>The value under <paramref name="key"/> as UTF-8 text, or null when missing.</summary>
        public async Task<string> GetStringAsync(string key, CancellationToken cancellationToken = default(CancellationToken))
        {
            var entry = await GetAsync(key, cancellationToken).ConfigureAwait(false);
            return entry == null ? null : entry.Text;
        }

        /// <summary>Stores <paramref name="value"/>; returns when it expires (null = never).</summary>
        public async Task<DateTimeOffset?> SetAsync(string key, byte[] value, CacheSetOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            var k = Native.Utf8(key);
            var v = value ?? Native.Empty;
            var set = CacheSetOptions.Record(options);
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_cache_set(client.Handle, k, Native.Len(k), v, Native.Len(v), set, Native.Len(set), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var expires = result.Decode<long?>();
            return expires == null ? (DateTimeOffset?)null : DateTimeOffset.FromUnixTimeMilliseconds(expires.Value);
        }

        /// <summary>Stores <paramref name="value"/> as UTF-8 text.</summary>
        public Task<DateTimeOffset?> SetAsync(string key, string value, CacheSetOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            return SetAsync(key, Encoding.UTF8.GetBytes(value ?? ""), options, cancellationToken);
        }

        /// <summary>Removes <paramref name="key"/>; whether it existed.</summary>
        public async Task<bool> DeleteAsync(string key, CancellationToken cancellationToken = default(CancellationToken))
        {
            var k = Native.Utf8(key);
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_cache_delete(client.Handle, k, Native.Len(k), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return result.Decode<bool>();
        }

        /// <summary>Removes every key tagged <paramref name="tag"/>; how many.</summary>
        public async Task<long> InvalidateTagAsync(string tag, CancellationToken cancellationToken = default(CancellationToken))
        {
            var t = Native.Utf8(tag);
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_cache_invalidate_tag(client.Handle, t, Native.Len(t), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return result.Decode<long>();
        }

        /// <summary>
        /// The value under <paramref name="key"/>, computed by <paramref name="compute"/> and stored
        /// when missing. Callers in this process asking for the same key at once share one
        /// computation (single flight); when it throws, each gets <see cref="CallbackFailedException"/>.
        /// </summary>
        public async Task<byte[]> GetOrComputeAsync(string key, Func<CancellationToken, Task<byte[]>> compute, CacheSetOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (compute == null) throw new ArgumentNullException("compute");
            var k = Native.Utf8(key);
            var set = CacheSetOptions.Record(options);
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_cache_begin(client.Handle, k, Native.Len(k), set, Native.Len(set), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var lookup = result.Decode<CacheLookupRecord>();
            if (result.Ticket == IntPtr.Zero) return Convert.FromBase64String(lookup.Hit ?? "");
            using (var ticket = new TicketHandle())
            {
                ticket.Adopt(result.Ticket);
                byte[] value;
                try
                {
                    value = await compute(cancellationToken).ConfigureAwait(false) ?? Native.Empty;
                }
                catch (Exception e)
                {
                    var message = Native.Utf8(e.Message);
                    await Native.CallAsync((c, cb, ud) => NativeMethods.syros_ticket_fail(ticket, message, Native.Len(message), c, cb, ud), CancellationToken.None).ConfigureAwait(false);
                    throw;
                }
                var stored = await Native.CallAsync((c, cb, ud) => NativeMethods.syros_ticket_complete(ticket, value, Native.Len(value), c, cb, ud), CancellationToken.None).ConfigureAwait(false);
                return Convert.FromBase64String(stored.Decode<string>() ?? "");
            }
        }
    }
}
