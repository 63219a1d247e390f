// A real `syros serve` for tests: port 0, the ready file, restart on the same ports, both
// backends (SYROS_TEST_BACKEND=redis-postgres uses SYROS_TEST_REDIS_URL/SYROS_TEST_DATABASE_URL
// with a fresh namespace). Shared by the SDK tests and the C# conformance runner.
using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.Serialization;
using System.Runtime.Serialization.Json;
using System.Text;
using System.Threading;

namespace Syros.Testing
{
    [DataContract]
    public sealed class ReadyFile
    {
        [DataMember(Name = "grpc")] public string Grpc;
        [DataMember(Name = "rest")] public string Rest;
        [DataMember(Name = "websocket")] public string WebSocket;
        [DataMember(Name = "pid")] public int Pid;
    }

    public sealed class TestServer : IDisposable
    {
        private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
        private static int counter;
        private readonly string dir;
        private ReadyFile ports;
        private Process process;
        private int starts;
        // One namespace per server (kept across restarts) so tests never see each other's keys.
        private readonly string namespaceName;

        public ReadyFile Ready { get; private set; }
        public string Address { get { return Ready.Grpc; } }

        public static string Backend
        {
            get { return Environment.GetEnvironmentVariable("SYROS_TEST_BACKEND") ?? "embedded"; }
        }

        private TestServer()
        {
            dir = Path.Combine(Path.GetTempPath(), "syros-cs-test-" + Process.GetCurrentProcess().Id + "-" + Interlocked.Increment(ref counter) + "-" + DateTime.UtcNow.Ticks);
            Directory.CreateDirectory(dir);
            namespaceName = "cs" + Process.GetCurrentProcess().Id + "x" + (DateTime.UtcNow.Ticks % 1000000000) + "x" + counter;
        }

        public static TestServer Start()
        {
            var server = new TestServer();
            try
            {
                server.Spawn();
            }
            catch
            {
                server.Dispose();
                throw;
            }
            return server;
        }

        private static string Bin()
        {
            var bin = Environment.GetEnvironmentVariable("SYROS_BIN");
            if (string.IsNullOrEmpty(bin))
                throw new InvalidOperationException("SYROS_BIN is not set: build the server (cargo build -p syros-server) and export SYROS_BIN=<target dir>/debug/syros (scripts/csharp-sdk.sh does this)");
            if (!File.Exists(bin)) throw new InvalidOperationException("SYROS_BIN=" + bin + " does not exist");
            return bin;
        }

        private static string Port(string address)
        {
            return address == null ? "0" : address.Substring(address.LastIndexOf(':') + 1);
        }

        private void Spawn()
        {
            var readyPath = Path.Combine(dir, "ready.json");
            File.Delete(readyPath);
            starts++;
            var info = new ProcessStartInfo(Bin(), "serve")
            {
                UseShellExecute = false,
                WorkingDirectory = dir,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            info.EnvironmentVariables["SYROS_DATA_DIR"] = Path.Combine(dir, "data");
            info.EnvironmentVariables["SYROS_READY_FILE"] = readyPath;
            info.EnvironmentVariables["GRPC_PORT"] = Port(ports == null ? null : ports.Grpc);
            info.EnvironmentVariables["REST_PORT"] = Port(ports == null ? null : ports.Rest);
            info.EnvironmentVariables["WS_PORT"] = Port(ports == null ? null : ports.WebSocket);
            info.EnvironmentVariables["LOG_LEVEL"] = "info";
            switch (Backend)
            {
                case "embedded":
                    break;
                case "redis-postgres":
                    var redis = Environment.GetEnvironmentVariable("SYROS_TEST_REDIS_URL");
                    var database = Environment.GetEnvironmentVariable("SYROS_TEST_DATABASE_URL");
                    if (string.IsNullOrEmpty(redis) || string.IsNullOrEmpty(database))
                        throw new InvalidOperationException("SYROS_TEST_BACKEND=redis-postgres needs SYROS_TEST_REDIS_URL and SYROS_TEST_DATABASE_URL");
                    info.EnvironmentVariables["REDIS_URL"] = redis;
                    info.EnvironmentVariables["DATABASE_URL"] = database;
                    info.EnvironmentVariables["SYROS_NAMESPACE"] = namespaceName;
                    break;
                default:
                    throw new InvalidOperationException("SYROS_TEST_BACKEND=" + Backend + ": expected embedded or redis-postgres");
            }
            var log = new StreamWriter(Path.Combine(dir, "syros-" + starts + ".log"), false, Encoding.UTF8) { AutoFlush = true };
            var p = new Process { StartInfo = info };
            p.OutputDataReceived += (s, e) => { if (e.Data != null) lock (log) log.WriteLine(e.Data); };
            p.ErrorDataReceived += (s, e) => { if (e.Data != null) lock (log) log.WriteLine(e.Data); };
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            process = p;
            var deadline = DateTime.UtcNow + ReadyTimeout;
            while (true)
            {
                if (File.Exists(readyPath))
                {
                    try
                    {
                        var bytes = File.ReadAllBytes(readyPath);
                        var ready = (ReadyFile)new DataContractJsonSerializer(typeof(ReadyFile)).ReadObject(new MemoryStream(bytes));
                        if (!string.IsNullOrEmpty(ready.Grpc) && !string.IsNullOrEmpty(ready.Rest) && !string.IsNullOrEmpty(ready.WebSocket))
                        {
                            Ready = ready;
                            if (ports == null) ports = ready;
                            return;
                        }
                    }
                    catch (SerializationException) { }
                    catch (IOException) { }
                }
                if (p.HasExited) throw new InvalidOperationException("syros serve exited before it was ready:\n" + Log());
                if (DateTime.UtcNow > deadline) throw new InvalidOperationException("syros serve was not ready within " + ReadyTimeout + ":\n" + Log());
                Thread.Sleep(10);
            }
        }

        public string Log()
        {
            var path = Path.Combine(dir, "syros-" + starts + ".log");
            try { return File.Exists(path) ? File.ReadAllText(path) : ""; } catch (IOException) { return ""; }
        }

        /// <summary>kill -9 (the server gets no chance to clean up).</summary>
        public void Kill()
        {
            if (process != null && !process.HasExited)
            {
                process.Kill();
                process.WaitForExit();
            }
        }

        /// <summary>kill -9 and start again on the same ports (and data).</summary>
        public void Restart()
        {
            Kill();
            Spawn();
        }

        public void Dispose()
        {
            Kill();
            try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
