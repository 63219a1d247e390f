package io.syros.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads the JNI library once: from {@code -Dsyros.native.library=<path>} when set, otherwise from
 * the jar's {@code /native/<os>-<arch>/} resource folder, extracted to a temporary file (deleted
 * when the JVM exits) and {@code System.load}ed. More platforms are more resource folders.
 */
public final class NativeLoader {
    private static boolean loaded;

    private NativeLoader() {}

    /** The resource folder of this platform, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String osName = os.contains("mac") ? "macos" : os.contains("win") ? "windows" : os.contains("linux") ? "linux" : os;
        String archName = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return osName + "-" + archName;
    }

    private static String libraryName(String platform) {
        if (platform.startsWith("macos")) return "libsyros_java.dylib";
        if (platform.startsWith("windows")) return "syros_java.dll";
        return "libsyros_java.so";
    }

    /** Load the library (idempotent). */
    public static synchronized void load() {
        if (loaded) return;
        String explicit = System.getProperty("syros.native.library");
        if (explicit != null && !explicit.isEmpty()) {
            System.load(Path.of(explicit).toAbsolutePath().toString());
            loaded = true;
            return;
        }
        String platform = platform();
        String name = libraryName(platform);
        String resource = "/native/" + platform + "/" + name;
        try (InputStream in = NativeLoader.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("the syros-client jar carries no native library for "
                        + platform + " (looked for " + resource + ")");
            }
            Path dir = Files.createTempDirectory("syros-native-");
            Path file = dir.resolve(name);
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            file.toFile().deleteOnExit();
            dir.toFile().deleteOnExit();
            System.load(file.toAbsolutePath().toString());
            loaded = true;
        } catch (IOException e) {
            UnsatisfiedLinkError error = new UnsatisfiedLinkError("cannot extract " + resource + ": " + e);
            error.initCause(e);
            throw error;
        }
    }
}
