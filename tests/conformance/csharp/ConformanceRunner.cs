// The C# conformance runner: runs every scenario of tests/conformance/scenarios against a fresh
// `syros serve` (sdks/csharp/tests/TestServer.cs; SYROS_TEST_BACKEND picks the backend) through
// the C# SDK, printing `PASS name` / `FAIL name: reason` and a closing `N passed, N failed`.
//
//   mono ConformanceRunner.exe [scenarios dir] [name filter]
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.Serialization.Json;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using System.Xml;
using System.Xml.Linq;
using Syros;
using Syros.Testing;

internal sealed class StepFailed : Exception
{
    public StepFailed(string message) : base(message) { }
}

internal static class Scenario
{
    // Arbitrary JSON as a tree of Dictionary<string, object>, List<object>, string, double, bool
    // and null, through the JSON-as-XML reader of System.Runtime.Serialization.Json.
    public static object Parse(byte[] json)
    {
        using (var reader = JsonReaderWriterFactory.CreateJsonReader(json, XmlDictionaryReaderQuotas.Max))
            return Convert(XElement.Load(reader));
    }

    private static object Convert(XElement e)
    {
        var type = (string)e.Attribute("type") ?? "string";
        switch (type)
        {
            case "object":
                var map = new Dictionary<string, object>();
                foreach (var child in e.Elements())
                {
                    var item = child.Attribute("item");
                    map[item != null ? item.Value : child.Name.LocalName] = Convert(child);
                }
                return map;
            case "array":
                return e.Elements().Select(Convert).ToList();
            case "number":
                return double.Parse(e.Value, System.Globalization.CultureInfo.InvariantCulture);
            case "boolean":
                return e.Value == "true";
            case "null":
                return null;
            default:
                return e.Value;
        }
    }
}

internal sealed class Run
{
    private readonly TestServer server;
    private readonly string id;
    private readonly CancellationToken token;
    private SyrosClient client;
    private readonly Dictionary<string, Lease> leases = new Dictionary<string, Lease>();
    private readonly Dictionary<string, KeyValuePair<CancellationTokenSource, Task<Lease>>> pending = new Dictionary<string, KeyValuePair<CancellationTokenSource, Task<Lease>>>();
    private readonly Dictionary<string, Subscription> subscriptions = new Dictionary<string, Subscription>();
    private readonly Dictionary<string, Dictionary<string, object>> saved = new Dictionary<string, Dictionary<string, object>>();

    public Run(TestServer server, string id, CancellationToken token)
    {
        this.server = server;
        this.id = id;
        this.token = token;
    }

    private static void Ensure(bool condition, string message) { if (!condition) throw new StepFailed(message); }

    private static string Text(Dictionary<string, object> s, string name)
    {
        object v;
        Ensure(s.TryGetValue(name, out v) && v is string, "step needs a string \"" + name + "\"");
        return (string)v;
    }

    private static double Num(Dictionary<string, object> s, string name, double fallback)
    {
        object v;
        return s.TryGetValue(name, out v) && v is double ? (double)v : fallback;
    }

    private static TimeSpan Ms(Dictionary<string, object> s, string name, double fallback)
    {
        return TimeSpan.FromMilliseconds(Num(s, name, fallback));
    }

    private static object Get(Dictionary<string, object> s, string name)
    {
        object v;
        return s != null && s.TryGetValue(name, out v) ? v : null;
    }

    private static Dictionary<string, object> Expect(Dictionary<string, object> s)
    {
        return Get(s, "expect") as Dictionary<string, object> ?? new Dictionary<string, object>();
    }

    private static string Show(object v) { return JsonValue.Encode(v); }

    private async Task<SyrosClient> Client()
    {
        if (client == null)
        {
            var options = new ClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2), CallTimeout = TimeSpan.FromSeconds(10) };
            options.Addresses.Add(server.Address);
            client = await SyrosClient.ConnectAsync(options, token);
        }
        return client;
    }

    private object Resolve(object value)
    {
        var s = value as string;
        if (s != null)
        {
            if (s.StartsWith("$"))
            {
                var parts = s.Substring(1).Split(new[] { '.' }, 2);
                Ensure(parts.Length == 2, "reference " + s + " needs a field");
                Dictionary<string, object> entry;
                Ensure(saved.TryGetValue(parts[0], out entry), "nothing saved as " + parts[0]);
                object field;
                Ensure(entry.TryGetValue(parts[1], out field), parts[0] + " has no field " + parts[1]);
                return field;
            }
            return s.Replace("{id}", id);
        }
        var list = value as List<object>;
        if (list != null) return list.Select(Resolve).ToList();
        var map = value as Dictionary<string, object>;
        if (map != null) return map.ToDictionary(kv => kv.Key, kv => Resolve(kv.Value));
        return value;
    }

    /// <summary>Runs a call expected to fail with expect.error (or succeed); true when it succeeded.</summary>
    private static async Task<bool> CheckError(Dictionary<string, object> s, Func<Task> call)
    {
        var wanted = Get(Expect(s), "error") as string;
        try
        {
            await call();
        }
        catch (SyrosException e)
        {
            Ensure(wanted != null, "unexpected error " + e.Code + ": " + e.Message);
            Ensure(e.Code == wanted, "expected error " + wanted + ", got " + e.Code + ": " + e.Message);
            return false;
        }
        Ensure(wanted == null, "expected error " + wanted + ", the call succeeded");
        return true;
    }

    private void KeepLease(object name, Lease lease)
    {
        var n = name as string;
        if (string.IsNullOrEmpty(n)) return;
        saved[n] = new Dictionary<string, object> { { "lease_id", lease.Info.LeaseId }, { "fencing_token", (double)lease.FencingToken }, { "key", lease.Key } };
        leases[n] = lease;
    }

    private Lease LeaseOf(Dictionary<string, object> s)
    {
        Lease lease;
        Ensure(leases.TryGetValue(Text(s, "lease"), out lease), "no lease saved as " + Text(s, "lease"));
        return lease;
    }

    private Subscription SubscriptionOf(Dictionary<string, object> s)
    {
        Subscription sub;
        Ensure(subscriptions.TryGetValue(Text(s, "subscription"), out sub), "no subscription saved as " + Text(s, "subscription"));
        return sub;
    }

    private static LockOptions LockOptionsOf(Dictionary<string, object> s)
    {
        return new LockOptions { Ttl = Ms(s, "ttl_ms", 5000), Wait = Ms(s, "wait_ms", 0) };
    }

    private static bool Same(object got, object want) { return Show(got) == Show(want); }

    public async Task Step(Dictionary<string, object> s)
    {
        var c = await Client();
        var expect = Expect(s);
        var op = Text(s, "op");
        switch (op)
        {
            case "lock":
            {
                Lease lease = null;
                if (await CheckError(s, async () => lease = await c.LockAsync(Text(s, "key"), LockOptionsOf(s), token)))
                    KeepLease(Get(s, "save"), lease);
                break;
            }
            case "try_lock":
            {
                var lease = await c.TryLockAsync(Text(s, "key"), LockOptionsOf(s), token);
                var acquired = Get(expect, "acquired");
                if (acquired is bool) Ensure((lease != null) == (bool)acquired, "expected acquired=" + acquired);
                if (lease != null) KeepLease(Get(s, "save"), lease);
                break;
            }
            case "lock_async":
            {
                var cts = CancellationTokenSource.CreateLinkedTokenSource(token);
                var key = Text(s, "key");
                var options = LockOptionsOf(s);
                pending[Text(s, "save")] = new KeyValuePair<CancellationTokenSource, Task<Lease>>(cts, Task.Run(() => c.LockAsync(key, options, cts.Token)));
                break;
            }
            case "await_lease":
            {
                var name = Text(s, "name");
                KeyValuePair<CancellationTokenSource, Task<Lease>> p;
                Ensure(pending.TryGetValue(name, out p), "nothing pending as " + name);
                pending.Remove(name);
                var within = Ms(s, "within_ms", 5000);
                if (await Task.WhenAny(p.Value, Task.Delay(within)) != p.Value)
                {
                    p.Key.Cancel();
                    throw new StepFailed(name + " was not granted within " + within);
                }
                Ensure(p.Value.Status == TaskStatus.RanToCompletion, name + " failed: " + p.Value.Exception);
                KeepLease(name, p.Value.Result);
                break;
            }
            case "expect_pending":
            {
                var name = Text(s, "name");
                await Task.Delay(Ms(s, "for_ms", 0));
                KeyValuePair<CancellationTokenSource, Task<Lease>> p;
                Ensure(pending.TryGetValue(name, out p), "nothing pending as " + name);
                Ensure(!p.Value.IsCompleted, name + " was already granted (out of order)");
                break;
            }
            case "release":
                await LeaseOf(s).ReleaseAsync(token);
                break;
            case "renew":
                await CheckError(s, () => LeaseOf(s).RenewAsync(token));
                break;
            case "lease_state":
            {
                var lease = LeaseOf(s);
                var held = Get(expect, "held");
                if (held is bool) Ensure(lease.IsHeld == (bool)held, "expected held=" + held);
                var lost = Get(expect, "lost");
                if (lost is bool) Ensure(lease.IsLost == (bool)lost, "expected lost=" + lost);
                break;
            }
            case "wait_end":
            {
                var end = await LeaseOf(s).WaitEndAsync(Ms(s, "timeout_ms", 1000), token);
                var name = end == LeaseEnd.Lost ? "lost" : end == LeaseEnd.Released ? "released" : "timed_out";
                Ensure(name == (string)Get(expect, "end"), "expected " + Get(expect, "end") + ", the wait ended " + name);
                break;
            }
            case "lock_status":
            {
                var holder = await c.LockStatusAsync(Text(s, "key"), token);
                if (Equals(Get(expect, "free"), true)) Ensure(holder == null, "expected free, held by " + (holder == null ? "" : holder.LeaseId));
                var want = Get(expect, "lease_id") as string;
                if (want != null) Ensure(holder != null && holder.LeaseId == want, "expected lease " + want + ", holder " + (holder == null ? "none" : holder.LeaseId));
                break;
            }
            case "force_release":
                await c.ForceReleaseAsync(Text(s, "key"), token);
                break;
            case "cache_set":
            {
                string value;
                var raw = Get(s, "value");
                if (raw is string) value = (string)raw;
                else
                {
                    var spec = raw as Dictionary<string, object>;
                    Ensure(spec != null, "bad cache value " + Show(raw));
                    var repeat = Get(spec, "repeat") as string ?? "x";
                    var times = Math.Max(1, (int)(Get(spec, "times") as double? ?? 1));
                    value = new StringBuilder(repeat.Length * times).Insert(0, repeat, times).ToString();
                }
                var tags = (Get(s, "tags") as List<object> ?? new List<object>()).Select(t => t.ToString()).ToList();
                var ttl = Num(s, "ttl_ms", 0);
                await CheckError(s, () => c.Cache.SetAsync(Text(s, "key"), value, new CacheSetOptions { Ttl = ttl > 0 ? TimeSpan.FromMilliseconds(ttl) : (TimeSpan?)null, Tags = tags }, token));
                break;
            }
            case "cache_get":
            {
                var value = await c.Cache.GetStringAsync(Text(s, "key"), token);
                if (Equals(Get(expect, "missing"), true)) Ensure(value == null, "expected no value");
                var want = Get(expect, "value") as string;
                if (want != null) Ensure(value == want, "expected \"" + want + "\", got \"" + value + "\"");
                break;
            }
            case "cache_invalidate_tag":
            {
                var removed = await c.Cache.InvalidateTagAsync(Text(s, "tag"), token);
                var want = Get(expect, "removed");
                if (want is double) Ensure(removed == (double)want, "removed " + removed + ", expected " + want);
                break;
            }
            case "append":
            {
                var list = Get(s, "events") as List<object>;
                Ensure(list != null, "append needs events");
                var events = list.Select(raw =>
                {
                    var e = raw as Dictionary<string, object>;
                    return new NewEvent(Get(e, "type") as string ?? "Event", Get(e, "data"));
                }).ToList();
                var expectedRaw = Get(s, "expected");
                var expected = expectedRaw is double ? ExpectedVersion.At((ulong)(double)expectedRaw)
                    : Equals(expectedRaw, "no_stream") ? ExpectedVersion.NoStream : ExpectedVersion.Any;
                AppendResult result = null;
                if (await CheckError(s, async () => result = await c.Events.AppendAsync(Text(s, "stream"), events, expected, token)))
                {
                    var want = Get(expect, "last_version");
                    if (want is double) Ensure(result.LastVersion == (double)want, "last version " + result.LastVersion + ", expected " + want);
                }
                break;
            }
            case "read":
            {
                var page = await c.Events.ReadAsync(new ReadOptions { Stream = Text(s, "stream"), Start = 0 }, token);
                var versions = Get(expect, "versions");
                if (versions != null)
                {
                    var got = page.Events.Select(e => (object)(double)e.Version).ToList();
                    Ensure(Same(got, versions), "versions " + Show(got) + ", expected " + Show(versions));
                }
                var types = Get(expect, "types");
                if (types != null)
                {
                    var got = page.Events.Select(e => (object)e.Type).ToList();
                    Ensure(Same(got, types), "types " + Show(got) + ", expected " + Show(types));
                }
                break;
            }
            case "subscribe":
            {
                var fromRaw = Get(s, "from");
                var from = fromRaw is double ? SubscribeFrom.At((ulong)(double)fromRaw)
                    : Equals(fromRaw, "end") ? SubscribeFrom.End : SubscribeFrom.Start;
                subscriptions[Text(s, "save")] = await c.Events.SubscribeAsync(Text(s, "stream"), from, token);
                break;
            }
            case "next_events":
            {
                var sub = SubscriptionOf(s);
                var deadline = Stopwatch.StartNew();
                var limit = Ms(s, "timeout_ms", 5000);
                var got = new List<object>();
                while (got.Count < (int)Num(s, "count", 1))
                {
                    var left = limit - deadline.Elapsed;
                    Ensure(left > TimeSpan.Zero, "only got versions " + Show(got) + " in time");
                    var e = await sub.NextAsync(left, token);
                    Ensure(!sub.IsEnded, "the subscription ended");
                    if (e != null) got.Add((double)e.Version);
                }
                var want = Get(expect, "versions");
                if (want != null) Ensure(Same(got, want), "versions " + Show(got) + ", expected " + Show(want));
                break;
            }
            case "expect_no_event":
            {
                var e = await SubscriptionOf(s).NextAsync(Ms(s, "within_ms", 500), token);
                Ensure(e == null, "expected no event, got version " + (e == null ? 0 : e.Version));
                break;
            }
            case "close":
                SubscriptionOf(s).Close();
                break;
            case "start_saga":
            {
                var list = Get(s, "steps") as List<object>;
                Ensure(list != null, "start_saga needs steps");
                var definition = new SagaDefinition { Name = Text(s, "name"), Input = Get(s, "input") ?? new Dictionary<string, object>() };
                foreach (Dictionary<string, object> st in list)
                {
                    var timeout = Num(st, "timeout_ms", 0);
                    definition.Steps.Add(new SagaStep
                    {
                        Name = Text(st, "name"),
                        Service = Text(st, "service"),
                        Action = Text(st, "action"),
                        Compensation = Get(st, "compensation") as string,
                        Timeout = timeout > 0 ? TimeSpan.FromMilliseconds(timeout) : (TimeSpan?)null,
                    });
                }
                var saga = await c.Sagas.StartAsync(definition, token);
                var save = Get(s, "save") as string;
                if (save != null) saved[save] = new Dictionary<string, object> { { "saga_id", saga.Id } };
                break;
            }
            case "run_worker":
                await RunWorker(c, s);
                break;
            case "compare":
            {
                var l = Get(s, "left");
                var r = Get(s, "right");
                Ensure(l is double && r is double, "compare needs numbers");
                double left = (double)l, right = (double)r;
                var cmp = Get(s, "cmp") as string ?? "==";
                bool holds;
                switch (cmp)
                {
                    case ">": holds = left > right; break;
                    case ">=": holds = left >= right; break;
                    case "==": holds = left == right; break;
                    case "!=": holds = left != right; break;
                    default: throw new StepFailed("unknown comparison " + cmp);
                }
                Ensure(holds, "expected " + left + " " + cmp + " " + right);
                break;
            }
            case "sleep":
                await Task.Delay(Ms(s, "ms", 0));
                break;
            case "restart_server":
            case "start_server":
                server.Restart();
                break;
            case "stop_server":
                server.Kill();
                break;
            default:
                throw new StepFailed("unknown operation " + op);
        }
    }

    private async Task RunWorker(SyrosClient c, Dictionary<string, object> s)
    {
        var sagaId = Text(s, "saga");
        var calls = new List<object>();
        var worker = c.Worker(Text(s, "service"), 4);
        var script = Get(s, "script") as Dictionary<string, object> ?? new Dictionary<string, object>();
        foreach (var entry in script)
        {
            var handler = entry.Key;
            var behaviour = entry.Value as Dictionary<string, object>;
            worker.Handle(handler, (task, ct) =>
            {
                lock (calls) calls.Add(handler);
                if (behaviour != null && behaviour.ContainsKey("complete")) return Task.FromResult(behaviour["complete"]);
                var failure = Get(behaviour, "fail") as Dictionary<string, object>;
                throw new TaskFailedException(Get(failure, "error_type") as string ?? "failed", Get(failure, "message") as string ?? "", Equals(Get(failure, "non_retryable"), true));
            });
        }
        Saga saga;
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(token))
        {
            var running = worker.RunAsync(stop.Token);
            try
            {
                saga = await c.Sagas.WaitAsync(sagaId, Ms(s, "timeout_ms", 20000), token);
            }
            catch (SyrosException e)
            {
                lock (calls) throw new StepFailed("the saga did not finish in time (" + e.Message + "); calls so far " + Show(calls));
            }
            finally
            {
                stop.Cancel();
                await running;
            }
        }
        var expect = Expect(s);
        var want = Get(expect, "calls");
        lock (calls)
            if (want != null) Ensure(Same(calls, want), "handlers ran " + Show(calls) + ", expected " + Show(want));
        var state = Get(expect, "state") as string;
        if (state != null) Ensure(saga.State == state, "saga ended " + saga.State + ", expected " + state);
    }

    public async Task Scenario(List<object> steps)
    {
        for (int index = 0; index < steps.Count; index++)
        {
            var s = (Dictionary<string, object>)Resolve(steps[index]);
            try
            {
                await Step(s);
            }
            catch (StepFailed e)
            {
                throw new StepFailed("step " + (index + 1) + " (" + Get(s, "op") + "): " + e.Message);
            }
            catch (SyrosException e)
            {
                throw new StepFailed("step " + (index + 1) + " (" + Get(s, "op") + "): " + e.Code + ": " + e.Message);
            }
        }
    }

    public void Finish()
    {
        foreach (var p in pending.Values)
        {
            p.Key.Cancel();
            try { p.Value.Wait(); } catch (AggregateException) { }
        }
        foreach (var sub in subscriptions.Values) sub.Dispose();
        foreach (var lease in leases.Values) lease.Dispose();
        if (client != null) client.Dispose();
    }
}

internal static class ConformanceRunner
{
    private static string RunScenario(string name, List<object> steps)
    {
        using (var server = TestServer.Start())
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
        {
            var run = new Run(server, name + "-" + Process.GetCurrentProcess().Id, timeout.Token);
            try
            {
                run.Scenario(steps).GetAwaiter().GetResult();
                return null;
            }
            catch (StepFailed e)
            {
                return e.Message;
            }
            catch (Exception e)
            {
                return e.ToString();
            }
            finally
            {
                run.Finish();
            }
        }
    }

    private static int Main(string[] args)
    {
        var dir = args.Length > 0 ? args[0] : Path.Combine("..", "scenarios");
        var filter = args.Length > 1 ? args[1] : "";
        int passed = 0, failed = 0;
        string[] files;
        try
        {
            files = Directory.GetFiles(dir, "*.json").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        }
        catch (Exception e)
        {
            Console.WriteLine("FAIL runner: " + e.Message);
            Console.WriteLine("0 passed, 1 failed");
            return 1;
        }
        var backend = TestServer.Backend;
        foreach (var file in files)
        {
            Dictionary<string, object> scenario;
            try
            {
                scenario = (Dictionary<string, object>)Scenario.Parse(File.ReadAllBytes(file));
            }
            catch (Exception e)
            {
                Console.WriteLine("FAIL " + Path.GetFileName(file) + ": not valid JSON: " + e.Message);
                failed++;
                continue;
            }
            var name = scenario["name"] as string ?? Path.GetFileName(file);
            if (filter != "" && !name.Contains(filter)) continue;
            var watch = Stopwatch.StartNew();
            var error = RunScenario(name, scenario["steps"] as List<object> ?? new List<object>());
            if (error == null)
            {
                passed++;
                Console.WriteLine("PASS " + name + " (" + watch.Elapsed.TotalSeconds.ToString("0.0") + "s, " + backend + ")");
            }
            else
            {
                failed++;
                Console.WriteLine("FAIL " + name + " (" + backend + "): " + error);
            }
        }
        SyrosRuntime.Shutdown(TimeSpan.FromSeconds(2));
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed > 0 || passed == 0 ? 1 : 0;
    }
}
