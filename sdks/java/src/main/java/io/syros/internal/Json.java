package io.syros.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The small JSON reader and writer the bridge's records need (no dependency for users):
 * objects become {@code LinkedHashMap}, arrays {@code ArrayList}, integers {@code Long},
 * other numbers {@code Double}. Internal.
 */
public final class Json {
    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** Parse one JSON value. */
    public static Object parse(String text) {
        Json json = new Json(text);
        Object value = json.value();
        json.space();
        if (json.at != text.length()) throw json.error("trailing characters");
        return value;
    }

    /** Parse a JSON object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Object value = parse(text);
        if (!(value instanceof Map)) throw new IllegalArgumentException("not a JSON object: " + text);
        return (Map<String, Object>) value;
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("bad JSON at " + at + ": " + what);
    }

    private void space() {
        while (at < text.length() && Character.isWhitespace(text.charAt(at))) at++;
    }

    private Object value() {
        space();
        if (at >= text.length()) throw error("unexpected end");
        char c = text.charAt(at);
        switch (c) {
            case '{': return object();
            case '[': return array();
            case '"': return string();
            case 't': return literal("true", Boolean.TRUE);
            case 'f': return literal("false", Boolean.FALSE);
            case 'n': return literal("null", null);
            default: return number();
        }
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, at)) throw error("expected " + word);
        at += word.length();
        return value;
    }

    private Map<String, Object> object() {
        Map<String, Object> map = new LinkedHashMap<>();
        at++;
        space();
        if (text.charAt(at) == '}') {
            at++;
            return map;
        }
        while (true) {
            space();
            String key = string();
            space();
            if (text.charAt(at++) != ':') throw error("expected :");
            map.put(key, value());
            space();
            char c = text.charAt(at++);
            if (c == '}') return map;
            if (c != ',') throw error("expected , or }");
        }
    }

    private List<Object> array() {
        List<Object> list = new ArrayList<>();
        at++;
        space();
        if (text.charAt(at) == ']') {
            at++;
            return list;
        }
        while (true) {
            list.add(value());
            space();
            char c = text.charAt(at++);
            if (c == ']') return list;
            if (c != ',') throw error("expected , or ]");
        }
    }

    private String string() {
        if (text.charAt(at) != '"') throw error("expected a string");
        at++;
        StringBuilder out = new StringBuilder();
        while (true) {
            char c = text.charAt(at++);
            if (c == '"') return out.toString();
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char e = text.charAt(at++);
            switch (e) {
                case 'n': out.append('\n'); break;
                case 't': out.append('\t'); break;
                case 'r': out.append('\r'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'u':
                    out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                    at += 4;
                    break;
                default: out.append(e);
            }
        }
    }

    private Object number() {
        int start = at;
        boolean integer = true;
        while (at < text.length()) {
            char c = text.charAt(at);
            if (c == '.' || c == 'e' || c == 'E') integer = false;
            else if (!(c == '-' || c == '+' || (c >= '0' && c <= '9'))) break;
            at++;
        }
        String digits = text.substring(start, at);
        if (digits.isEmpty()) throw error("unexpected character");
        if (integer) {
            try {
                return Long.parseLong(digits);
            } catch (NumberFormatException tooBig) {
                return Long.parseUnsignedLong(digits);
            }
        }
        return Double.parseDouble(digits);
    }

    /** Write {@code value} (Map, Collection, String, Number, Boolean, null) as JSON. */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String s) {
            quote(out, s);
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                if (entry.getValue() == null) continue;
                if (!first) out.append(',');
                first = false;
                quote(out, String.valueOf(entry.getKey()));
                out.append(':');
                write(out, entry.getValue());
            }
            out.append('}');
        } else if (value instanceof Collection<?> items) {
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) out.append(',');
                first = false;
                write(out, item);
            }
            out.append(']');
        } else {
            quote(out, value.toString());
        }
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }

    /** A fluent builder of a JSON object (null values are left out). */
    public static Obj obj() {
        return new Obj();
    }

    /** See {@link #obj()}. */
    public static final class Obj {
        private final Map<String, Object> map = new LinkedHashMap<>();

        private Obj() {}

        /** Add a field. */
        public Obj put(String name, Object value) {
            map.put(name, value);
            return this;
        }

        /** The object as a map. */
        public Map<String, Object> map() {
            return map;
        }

        @Override
        public String toString() {
            return write(map);
        }
    }

    /** Field {@code name} as a long (0 when absent). */
    public static long getLong(Map<String, Object> map, String name) {
        Object value = map.get(name);
        return value instanceof Number n ? n.longValue() : 0L;
    }

    /** Field {@code name} as a string (null when absent). */
    public static String getString(Map<String, Object> map, String name) {
        Object value = map.get(name);
        return value == null ? null : value.toString();
    }

    /** Field {@code name} as a boolean (false when absent). */
    public static boolean getBool(Map<String, Object> map, String name) {
        return Boolean.TRUE.equals(map.get(name));
    }

    /** Field {@code name} as a list of objects (empty when absent). */
    @SuppressWarnings("unchecked")
    public static List<Map<String, Object>> getObjects(Map<String, Object> map, String name) {
        Object value = map.get(name);
        return value instanceof List ? (List<Map<String, Object>>) value : List.of();
    }

    /** Field {@code name} as a list of strings (empty when absent). */
    public static List<String> getStrings(Map<String, Object> map, String name) {
        Object value = map.get(name);
        List<String> out = new ArrayList<>();
        if (value instanceof List<?> list) for (Object item : list) out.add(String.valueOf(item));
        return out;
    }
}
