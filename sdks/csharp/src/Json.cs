// JSON for the C ABI's records: DataContractJsonSerializer for the fixed records (no third-party
// package), and a small writer for the host's own values (saga inputs, handler outputs, event
// data), which may be anonymous objects.
using System;
using System.Collections;
using System.Globalization;
using System.IO;
using System.Reflection;
using System.Runtime.Serialization;
using System.Runtime.Serialization.Json;
using System.Text;

namespace Syros
{
    /// <summary>A JSON document used as it is (not encoded again) where a value is JSON-encoded.</summary>
    public sealed class RawJson
    {
        /// <summary>Wraps <paramref name="text"/>, which must be a JSON document.</summary>
        public RawJson(string text) { Text = text; }

        /// <summary>The JSON text.</summary>
        public string Text { get; private set; }

        /// <inheritdoc />
        public override string ToString() { return Text; }
    }

    /// <summary>One serializer per record type, with maps as plain JSON objects.</summary>
    internal static class Json<T>
    {
        private static readonly DataContractJsonSerializer Serializer = new DataContractJsonSerializer(
            typeof(T), new DataContractJsonSerializerSettings { UseSimpleDictionaryFormat = true });

        internal static T Read(byte[] json)
        {
            if (json == null || json.Length == 0) return default(T);
            using (var stream = new MemoryStream(json))
            {
                try
                {
                    return (T)Serializer.ReadObject(stream);
                }
                catch (SerializationException e)
                {
                    throw new InternalException("cannot decode a record from the syros library: " + e.Message, false, null);
                }
            }
        }

        internal static T Read(string json) { return Read(json == null ? null : Encoding.UTF8.GetBytes(json)); }

        internal static byte[] Write(T value)
        {
            using (var stream = new MemoryStream())
            {
                Serializer.WriteObject(stream, value);
                return stream.ToArray();
            }
        }
    }

    /// <summary>Encodes host values as JSON.</summary>
    public static class JsonValue
    {
        /// <summary>
        /// Encodes <paramref name="value"/>: null, strings, booleans, numbers, <see cref="RawJson"/>
        /// (as it is), dictionaries (string keys), sequences, and other objects by their public
        /// properties (anonymous objects included).
        /// </summary>
        public static string Encode(object value)
        {
            var text = new StringBuilder();
            Write(text, value, 0);
            return text.ToString();
        }

        /// <summary>Decodes <paramref name="json"/> into a data contract type (or a primitive, a dictionary, an array).</summary>
        public static T Decode<T>(string json) { return Json<T>.Read(json); }

        private static void Write(StringBuilder text, object value, int depth)
        {
            if (depth > 64) throw new ArgumentException("the value nests too deep to encode as JSON");
            if (value == null) { text.Append("null"); return; }
            var raw = value as RawJson;
            if (raw != null) { text.Append(raw.Text); return; }
            var s = value as string;
            if (s != null) { WriteString(text, s); return; }
            if (value is bool) { text.Append((bool)value ? "true" : "false"); return; }
            if (value is char || value is Guid || value is Enum) { WriteString(text, value.ToString()); return; }
            if (value is DateTime) { WriteString(text, ((DateTime)value).ToString("o", CultureInfo.InvariantCulture)); return; }
            if (value is DateTimeOffset) { WriteString(text, ((DateTimeOffset)value).ToString("o", CultureInfo.InvariantCulture)); return; }
            if (value is float || value is double)
            {
                double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new ArgumentException("JSON has no NaN or infinity");
                text.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is IConvertible && value.GetType().IsPrimitive || value is decimal)
            {
                text.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                return;
            }
            var map = value as IDictionary;
            if (map != null)
            {
                text.Append('{');
                bool first = true;
                foreach (DictionaryEntry entry in map)
                {
                    if (!first) text.Append(',');
                    first = false;
                    WriteString(text, Convert.ToString(entry.Key, CultureInfo.InvariantCulture));
                    text.Append(':');
                    Write(text, entry.Value, depth + 1);
                }
                text.Append('}');
                return;
            }
            var items = value as IEnumerable;
            if (items != null)
            {
                text.Append('[');
                bool first = true;
                foreach (var item in items)
                {
                    if (!first) text.Append(',');
                    first = false;
                    Write(text, item, depth + 1);
                }
                text.Append(']');
                return;
            }
            text.Append('{');
            bool firstProperty = true;
            foreach (var property in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.GetIndexParameters().Length > 0 || !property.CanRead) continue;
                if (!firstProperty) text.Append(',');
                firstProperty = false;
                WriteString(text, property.Name);
                text.Append(':');
                Write(text, property.GetValue(value, null), depth + 1);
            }
            text.Append('}');
        }

        private static void WriteString(StringBuilder text, string s)
        {
            text.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': text.Append("\\\""); break;
                    case '\\': text.Append("\\\\"); break;
                    case '\n': text.Append("\\n"); break;
                    case '\r': text.Append("\\r"); break;
                    case '\t': text.Append("\\t"); break;
                    default:
                        if (c < 0x20) text.Append("\\u").Append(((int)c).ToString("x4"));
                        else text.Append(c);
                        break;
                }
            }
            text.Append('"');
        }
    }
}
