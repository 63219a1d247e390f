package io.syros;

import static org.junit.jupiter.api.Assertions.*;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ErrorsProcessTest {
    @Test
    void everyCodeHasItsDocumentedClass() {
        assertEquals(SyrosException.CODES, SyrosClient.errorCodes(), "the Java list follows the core's");
        for (String code : SyrosClient.errorCodes()) {
            SyrosException e = SyrosException.of(code, "m", false, Map.of());
            assertNotEquals(SyrosException.class, e.getClass(), code + " has no class of its own");
            assertEquals(code, e.code());
            String expected = java.util.Arrays.stream(code.split("_"))
                    .map(w -> Character.toUpperCase(w.charAt(0)) + w.substring(1)).reduce("", String::concat) + "Exception";
            assertEquals(expected, e.getClass().getSimpleName());
        }
    }

    @Test
    void errorsFromTheServerAreTheirClasses() throws Exception {
        try (SyrosServer server = SyrosServer.start(); SyrosClient client = server.connect()) {
            InvalidArgumentException bad = assertThrows(InvalidArgumentException.class,
                    () -> client.lock("", LockOptions.ttl(Duration.ofSeconds(1))));
            assertFalse(bad.isRetryable());
            assertThrows(NotFoundException.class, () -> client.sagas().get("missing"));
            client.close();
            assertThrows(CancelledException.class, () -> client.lock("k", LockOptions.ttl(Duration.ofSeconds(1))));
        }
    }

    @Test
    void unreachableServerIsUnavailable() {
        UnavailableException e = assertThrows(UnavailableException.class, () -> SyrosClient.connect(
                ClientOptions.builder().address("127.0.0.1:1").connectTimeout(Duration.ofSeconds(1)).build()));
        assertTrue(e.isRetryable());
    }

    @Test
    void theJvmExitsByItselfAfterClose() throws Exception {
        try (SyrosServer server = SyrosServer.start()) {
            Process child = ChildJvm.start(ExitMain.class, server.grpcAddress());
            boolean exited = child.waitFor(60, TimeUnit.SECONDS);
            if (!exited) child.destroyForcibly();
            assertTrue(exited, "the JVM did not exit after close(): " + ChildJvm.output(child));
            String output = ChildJvm.output(child);
            assertEquals(0, child.exitValue(), output);
            assertTrue(output.contains("exit-main done"), output);
        }
    }
}
