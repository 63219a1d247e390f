package io.syros;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The one way the Java tests (and tests/conformance/java) start a server: a real {@code syros
 * serve} ($SYROS_BIN) on ephemeral ports that reports its addresses in SYROS_READY_FILE; restart
 * keeps the ports. {@code SYROS_TEST_BACKEND=redis-postgres} runs it on SYROS_TEST_REDIS_URL and
 * SYROS_TEST_DATABASE_URL. A server that cannot start fails the test with its log; never a skip.
 */
public final class SyrosServer implements AutoCloseable {
    private static final Pattern FIELD = Pattern.compile("\"(grpc|rest|websocket)\"\\s*:\\s*\"([^\"]+)\"");

    private final Path dir;
    private final Map<String, String> extraEnv;
    /** This server's keys in the shared Redis/PostgreSQL: the same across restarts. */
    private final String namespace = "j" + ProcessHandle.current().pid() + "x" + System.nanoTime();
    private Process process;
    private String grpc;
    private String rest;
    private String websocket;
    private int starts;

    private SyrosServer(Map<String, String> extraEnv) throws IOException {
        this.dir = Files.createTempDirectory("syros-java-test-");
        this.extraEnv = extraEnv;
    }

    /** Start a server and wait until it is ready. */
    public static SyrosServer start() throws Exception {
        return start(Map.of());
    }

    /** Start a server with extra environment variables. */
    public static SyrosServer start(Map<String, String> env) throws Exception {
        SyrosServer server = new SyrosServer(env);
        server.spawn();
        return server;
    }

    /** {@code 127.0.0.1:<grpc port>}, the same across restarts. */
    public String grpcAddress() {
        return grpc;
    }

    /** Client options for this server. */
    public ClientOptions options() {
        return ClientOptions.builder().address(grpc).build();
    }

    /** Connect a client to it. */
    public SyrosClient connect() {
        return SyrosClient.connect(options());
    }

    /** The server's process id. */
    public long pid() {
        return process.pid();
    }

    private static String port(String address) {
        return address == null ? "0" : address.substring(address.lastIndexOf(':') + 1);
    }

    private void spawn() throws Exception {
        String bin = System.getenv("SYROS_BIN");
        if (bin == null || bin.isEmpty()) {
            throw new IllegalStateException("SYROS_BIN is not set: build the server (cargo build -p syros-server) and "
                    + "export SYROS_BIN=<target dir>/debug/syros (scripts/java-sdk.sh does this)");
        }
        if (!new File(bin).canExecute()) throw new IllegalStateException("SYROS_BIN=" + bin + " is not executable");
        Path ready = dir.resolve("ready.json");
        Files.deleteIfExists(ready);
        starts++;
        ProcessBuilder builder = new ProcessBuilder(bin, "serve");
        Map<String, String> env = builder.environment();
        env.put("SYROS_DATA_DIR", dir.resolve("data").toString());
        env.put("SERVER_HOST", "127.0.0.1");
        env.put("GRPC_PORT", port(grpc));
        env.put("REST_PORT", port(rest));
        env.put("WS_PORT", port(websocket));
        env.put("SYROS_READY_FILE", ready.toString());
        String backend = System.getenv().getOrDefault("SYROS_TEST_BACKEND", "embedded");
        if (backend.equals("redis-postgres")) {
            String redis = System.getenv("SYROS_TEST_REDIS_URL");
            String database = System.getenv("SYROS_TEST_DATABASE_URL");
            if (redis == null || database == null) {
                throw new IllegalStateException("SYROS_TEST_BACKEND=redis-postgres needs SYROS_TEST_REDIS_URL and SYROS_TEST_DATABASE_URL");
            }
            env.put("REDIS_URL", redis);
            env.put("DATABASE_URL", database);
            env.put("SYROS_NAMESPACE", namespace);
        } else if (!backend.equals("embedded")) {
            throw new IllegalStateException("SYROS_TEST_BACKEND=" + backend + ": expected embedded or redis-postgres");
        }
        env.putAll(extraEnv);
        File log = dir.resolve("syros-" + starts + ".log").toFile();
        builder.redirectErrorStream(true).redirectOutput(log);
        process = builder.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            if (Files.exists(ready)) {
                String text = Files.readString(ready);
                Matcher m = FIELD.matcher(text);
                String g = null, r = null, w = null;
                while (m.find()) {
                    switch (m.group(1)) {
                        case "grpc" -> g = m.group(2);
                        case "rest" -> r = m.group(2);
                        default -> w = m.group(2);
                    }
                }
                if (g != null && r != null && w != null) {
                    grpc = g;
                    rest = r;
                    websocket = w;
                    return;
                }
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("syros serve exited (" + process.exitValue() + ") before it was ready:\n" + log());
            }
            Thread.sleep(50);
        }
        process.destroyForcibly();
        throw new IllegalStateException("syros serve was not ready within 60 s:\n" + log());
    }

    /** The latest log. */
    public String log() {
        try {
            return Files.readString(dir.resolve("syros-" + starts + ".log"));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** kill -9 the server (it is gone, as after a crash). */
    public void kill() throws InterruptedException {
        if (process != null && process.isAlive()) {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
    }

    /** kill -9 and start again on the same ports and data. */
    public void restart() throws Exception {
        kill();
        spawn();
    }

    /** Stop it and remove its files. */
    @Override
    public void close() throws Exception {
        kill();
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
