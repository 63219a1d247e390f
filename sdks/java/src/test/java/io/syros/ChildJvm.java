package io.syros;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Runs a main class of the test classpath in a child JVM (same classpath, same native library). */
final class ChildJvm {
    private ChildJvm() {}

    static Process start(Class<?> main, String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        String lib = System.getProperty("syros.native.library");
        if (lib != null) command.add("-Dsyros.native.library=" + lib);
        command.add(main.getName());
        command.addAll(List.of(args));
        // Output to a file: a full pipe must not block the child, and reading it twice works.
        File log = File.createTempFile("syros-child-", ".log");
        log.deleteOnExit();
        Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log).start();
        LOGS.put(process, log);
        return process;
    }

    private static final java.util.Map<Process, File> LOGS = new java.util.concurrent.ConcurrentHashMap<>();

    static String output(Process p) {
        try {
            return java.nio.file.Files.readString(LOGS.get(p).toPath(), StandardCharsets.UTF_8);
        } catch (Exception e) {
            return "(no output: " + e + ")";
        }
    }
}
