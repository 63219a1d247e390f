// The C# SDK's tests against a real `syros serve` (SYROS_BIN), with a small runner that prints
// PASS/FAIL per test and `N passed, N failed` (NUnit from Debian prints a summary CI cannot read).
// The process must exit by itself afterwards: scripts/csharp-sdk.sh runs it under a time limit.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Syros;
using Syros.Testing;

internal static class Tests
{
    private static TestServer server;
    private static int unique;

    private static string Id(string prefix) { return prefix + "-" + Process.GetCurrentProcess().Id + "-" + Interlocked.Increment(ref unique); }

    private static void Check(bool condition, string what)
    {
        if (!condition) throw new Exception("check failed: " + what);
    }

    private static void Equal<T>(T expected, T actual, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
            throw new Exception(what + ": expected " + expected + ", got " + actual);
    }

    private static async Task<TException> Throws<TException>(Func<Task> action, string what) where TException : Exception
    {
        try
        {
            await action();
        }
        catch (TException e)
        {
            return e;
        }
        catch (Exception e)
        {
            throw new Exception(what + ": expected " + typeof(TException).Name + ", got " + e.GetType().Name + ": " + e.Message);
        }
        throw new Exception(what + ": expected " + typeof(TException).Name + ", nothing was thrown");
    }

    private static Task<SyrosClient> Connect(TestServer s = null)
    {
        var options = new ClientOptions();
        options.Addresses.Add((s ?? server).Address);
        return SyrosClient.ConnectAsync(options);
    }

    private static async Task ClientBasics()
    {
        var client = await Connect();
        try
        {
            await client.CheckHealthAsync();
            Check(!string.IsNullOrEmpty(client.Owner), "the client has an owner");
            Check(client.Stats.Calls >= 1, "stats count calls");
            client.SetAuthToken(null);
            var bad = new ClientOptions();
            await Throws<InvalidArgumentException>(() => SyrosClient.ConnectAsync(bad), "no address");
        }
        finally
        {
            await client.DisposeAsync();
        }
        await Throws<CancelledException>(() => client.CheckHealthAsync(), "a call on a disposed client");
    }

    private static async Task LockFencingStatusListRelease()
    {
        using (var client = await Connect())
        {
            var key = Id("orders");
            var lease = await client.LockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10), Wait = TimeSpan.FromSeconds(5) });
            Check(lease.FencingToken > 0, "a fencing token");
            Check(lease.IsHeld && !lease.IsLost, "held, not lost");
            var status = await client.LockStatusAsync(key);
            Equal(lease.Info.LeaseId, status.LeaseId, "status names the lease");
            var listed = await client.ListLocksAsync(key);
            Check(listed.Any(l => l.LeaseId == lease.Info.LeaseId), "list shows the lease");
            Check(await client.TryLockAsync(key) == null, "try_lock of a held key is null");
            var renewed = await lease.RenewAsync();
            Equal(lease.FencingToken, renewed.FencingToken, "renewal keeps the token");
            await lease.ReleaseAsync();
            Check(!lease.IsHeld, "released");
            Equal(LeaseEnd.Released, await lease.WaitEndAsync(TimeSpan.FromSeconds(1)), "wait_end after release");
            Check(await client.LockStatusAsync(key) == null, "free after release");
            var second = await client.TryLockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10) });
            Check(second != null && second.FencingToken > lease.FencingToken, "fencing tokens increase");
            var forced = await client.ForceReleaseAsync(key);
            Equal(second.Info.LeaseId, forced.LeaseId, "force release drops the lease");
            await Throws<LockNotHeldException>(() => second.RenewAsync(), "renewing a force-released lease");
            second.Dispose();
            await lease.DisposeAsync();
        }
    }

    private static async Task LockTimeoutIsTyped()
    {
        using (var client = await Connect())
        {
            var key = Id("busy");
            var holder = await client.LockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10), Owner = "holder-a" });
            var e = await Throws<LockTimeoutException>(() => client.LockAsync(key, new LockOptions { Wait = TimeSpan.FromMilliseconds(300) }), "lock of a held key");
            Equal("lock_timeout", e.Code, "code");
            Check(e is SyrosException && !e.IsRetryable, "typed, not retryable");
            Equal("holder-a", e.Details.ContainsKey("holder_owner") ? e.Details["holder_owner"] : null, "details name the holder");
            await holder.DisposeAsync();
        }
    }

    private static async Task CancelledWaitLeavesNoLease()
    {
        using (var client = await Connect())
        {
            var key = Id("cancel");
            var holder = await client.LockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10) });
            var liveBefore = SyrosRuntime.LiveHandles;
            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
            {
                var watch = Stopwatch.StartNew();
                await Throws<OperationCanceledException>(() => client.LockAsync(key, new LockOptions { Wait = TimeSpan.FromSeconds(30), Owner = "waiter" }, cts.Token), "a cancelled wait");
                Check(watch.Elapsed < TimeSpan.FromSeconds(10), "the cancelled wait returns promptly (took " + watch.Elapsed + ")");
            }
            await holder.ReleaseAsync();
            // The cancelled waiter must not be granted the key once it is free.
            await Task.Delay(500);
            var status = await client.LockStatusAsync(key);
            Check(status == null, "no lease left behind (held by " + (status == null ? "" : status.Owner) + ")");
            Equal(liveBefore, SyrosRuntime.LiveHandles, "no native handle left behind");
            holder.Dispose();
        }
    }

    private static async Task ConcurrentTasksKeepCounterExact()
    {
        const int tasks = 6, rounds = 5;
        using (var client = await Connect())
        {
            var key = Id("counter");
            await client.Cache.SetAsync(key, "0");
            var workers = Enumerable.Range(0, tasks).Select(async i =>
            {
                for (int r = 0; r < rounds; r++)
                {
                    var lease = await client.LockAsync(key + ":lock", new LockOptions { Ttl = TimeSpan.FromSeconds(10), Wait = TimeSpan.FromSeconds(60) });
                    try
                    {
                        // A read-modify-write that loses updates unless the lock excludes the others.
                        var value = int.Parse(await client.Cache.GetStringAsync(key));
                        await Task.Delay(5);
                        await client.Cache.SetAsync(key, (value + 1).ToString());
                    }
                    finally
                    {
                        await lease.DisposeAsync();
                    }
                }
            }).ToArray();
            await Task.WhenAll(workers);
            Equal((tasks * rounds).ToString(), await client.Cache.GetStringAsync(key), "the counter");
        }
    }

    private static async Task LostIsCancelledWhenServerGonePastTtl()
    {
        using (var own = TestServer.Start())
        {
            var options = new ClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1), CallTimeout = TimeSpan.FromSeconds(1) };
            options.Addresses.Add(own.Address);
            var client = await SyrosClient.ConnectAsync(options);
            var lease = await client.LockAsync(Id("lost"), new LockOptions { Ttl = TimeSpan.FromSeconds(2) });
            var lost = lease.Lost;
            Check(!lost.IsCancellationRequested, "not lost while the server is up");
            own.Kill();
            var signalled = new TaskCompletionSource<bool>();
            using (lost.Register(() => signalled.TrySetResult(true)))
            {
                var first = await Task.WhenAny(signalled.Task, Task.Delay(TimeSpan.FromSeconds(30)));
                Check(first == signalled.Task, "Lost was cancelled within 30 s of the server going away (TTL 2 s)");
            }
            Check(lease.IsLost, "IsLost");
            lease.Dispose();
            client.Dispose();
        }
    }

    private static async Task Cache()
    {
        using (var client = await Connect())
        {
            var key = Id("cache");
            var tag = Id("tag");
            var expires = await client.Cache.SetAsync(key, Encoding.UTF8.GetBytes("value"), new CacheSetOptions { Ttl = TimeSpan.FromMinutes(1), Tags = new[] { tag } });
            Check(expires != null, "an expiry");
            var entry = await client.Cache.GetAsync(key);
            Equal("value", entry.Text, "get");
            Check(entry.Tags.Contains(tag), "tags");
            await client.Cache.SetAsync(key + "b", "other", new CacheSetOptions { Tags = new[] { tag } });
            Equal(2L, await client.Cache.InvalidateTagAsync(tag), "invalidated");
            Check(await client.Cache.GetAsync(key) == null, "missing after invalidation");
            await client.Cache.SetAsync(key, "again");
            Check(await client.Cache.DeleteAsync(key), "deleted");
            Check(!await client.Cache.DeleteAsync(key), "already gone");
        }
    }

    private static async Task GetOrComputeSingleFlight()
    {
        using (var client = await Connect())
        {
            var key = Id("compute");
            int computed = 0;
            var gate = new TaskCompletionSource<bool>();
            Func<CancellationToken, Task<byte[]>> compute = async t =>
            {
                Interlocked.Increment(ref computed);
                await gate.Task;
                return Encoding.UTF8.GetBytes("computed");
            };
            var calls = Enumerable.Range(0, 5).Select(_ => client.Cache.GetOrComputeAsync(key, compute)).ToArray();
            await Task.Delay(300);
            gate.SetResult(true);
            var values = await Task.WhenAll(calls);
            Check(values.All(v => Encoding.UTF8.GetString(v) == "computed"), "every caller gets the value");
            Equal(1, computed, "computed once");
            Equal("computed", await client.Cache.GetStringAsync(key), "stored");
            var hit = await client.Cache.GetOrComputeAsync(key, _ => { throw new Exception("not called on a hit"); });
            Equal("computed", Encoding.UTF8.GetString(hit), "a hit");
            var failing = Id("fails");
            await Throws<InvalidOperationException>(() => client.Cache.GetOrComputeAsync(failing, _ => { throw new InvalidOperationException("boom"); }), "a failing computation");
            Check(await client.Cache.GetAsync(failing) == null, "nothing stored for a failed computation");
        }
    }

    private static async Task Events()
    {
        using (var client = await Connect())
        {
            var stream = Id("order");
            var subscription = await client.Events.SubscribeAsync(stream, SubscribeFrom.Start);
            var appended = await client.Events.AppendAsync(stream, new[] { new NewEvent("Created", new { id = 42, items = new[] { "a", "b" } }), new NewEvent("Paid", new Dictionary<string, object> { { "amount", 9.5 } }) }, ExpectedVersion.NoStream);
            Equal(1UL, appended.LastVersion, "last version (versions from 0)");
            await Throws<VersionConflictException>(() => client.Events.AppendAsync(stream, new[] { new NewEvent("Again", null) }, ExpectedVersion.NoStream), "a version conflict");
            await client.Events.AppendAsync(stream, new[] { new NewEvent("Shipped", new RawJson("{\"carrier\":\"x\"}")) }, ExpectedVersion.At(1));
            var read = await client.Events.ReadStreamAsync(stream);
            Equal("Created,Paid,Shipped", string.Join(",", read.Events.Select(e => e.Type)), "read types");
            Equal("{\"id\":42,\"items\":[\"a\",\"b\"]}", read.Events[0].DataJson, "data JSON");
            var data = read.Events[0].Data<Dictionary<string, object>>();
            Check(data.ContainsKey("id"), "data decodes");
            var seen = new List<ulong>();
            while (seen.Count < 3)
            {
                var e = await subscription.NextAsync(TimeSpan.FromSeconds(10));
                Check(e != null, "an event within 10 s");
                seen.Add(e.Version);
            }
            Equal("0,1,2", string.Join(",", seen), "subscription versions");
            Check(await subscription.NextAsync(TimeSpan.FromMilliseconds(200)) == null && !subscription.IsEnded, "timed out, not ended");
            var enumerator = subscription.GetAsyncEnumerator();
            await client.Events.AppendAsync(stream, new[] { new NewEvent("Closed", null) });
            Check(await enumerator.MoveNextAsync() && enumerator.Current.Type == "Closed", "the enumerator pattern");
            subscription.Close();
            Check(await subscription.NextAsync(TimeSpan.FromSeconds(5)) == null && subscription.IsEnded, "ended after close");
            subscription.Dispose();
        }
    }

    private static async Task SagaWithCSharpHandlersCompensates()
    {
        using (var client = await Connect())
        {
            var service = Id("shop");
            var calls = new List<string>();
            Func<string, Func<SagaTask, CancellationToken, Task<object>>> record = name => (task, token) =>
            {
                lock (calls) calls.Add(name);
                return Task.FromResult<object>(new { step = task.StepName, by = name });
            };
            var worker = client.Worker(service)
                .Handle("reserve", record("reserve"))
                .Handle("release", record("release"))
                .Handle("charge", async (task, token) =>
                {
                    lock (calls) calls.Add("charge");
                    var reserved = task.Output<Dictionary<string, string>>("reserve");
                    Check(reserved != null && reserved["by"] == "reserve", "a previous step's output");
                    Check(task.Input<Dictionary<string, object>>().ContainsKey("order"), "the saga input");
                    await Task.Yield();
                    return new { charged = true };
                })
                .Handle("refund", record("refund"))
                .Handle("ship", (task, token) =>
                {
                    lock (calls) calls.Add("ship");
                    throw new TaskFailedException("OutOfStock", "nothing to ship", true);
                });
            using (var stop = new CancellationTokenSource())
            {
                var running = worker.RunAsync(stop.Token);
                var definition = new SagaDefinition { Name = "order", Input = new { order = 42 } };
                definition.Steps.Add(new SagaStep { Name = "reserve", Service = service, Action = "reserve", Compensation = "release" });
                definition.Steps.Add(new SagaStep { Name = "charge", Service = service, Action = "charge", Compensation = "refund" });
                definition.Steps.Add(new SagaStep { Name = "ship", Service = service, Action = "ship" });
                var saga = await client.Sagas.StartAsync(definition);
                var final = await client.Sagas.WaitAsync(saga.Id, TimeSpan.FromSeconds(60));
                Equal("compensated", final.State, "saga state");
                lock (calls) Equal("reserve,charge,ship,refund,release", string.Join(",", calls), "handler calls");
                var fetched = await client.Sagas.GetAsync(saga.Id);
                Equal("compensated", fetched.State, "get");
                var listed = await client.Sagas.ListAsync(name: "order");
                Check(listed.Any(s => s.Id == saga.Id), "list");
                stop.Cancel();
                await running;
            }
            await Throws<NotFoundException>(() => client.Sagas.GetAsync("no-such-saga"), "an unknown saga");
        }
    }

    private static async Task SagaCancel()
    {
        using (var client = await Connect())
        {
            var service = Id("nobody-runs-this");
            var definition = new SagaDefinition { Name = "waits" };
            definition.Steps.Add(new SagaStep { Name = "one", Service = service, Action = "one" });
            var saga = await client.Sagas.StartAsync(definition);
            await client.Sagas.CancelAsync(saga.Id);
            var final = await client.Sagas.WaitAsync(saga.Id, TimeSpan.FromSeconds(30));
            Check(final.IsFinal && final.State != "completed", "cancelled saga is final (" + final.State + ")");
        }
    }

    private static async Task DisposeLeaksNothing()
    {
        var client = await Connect();
        var lease = await client.LockAsync(Id("leak"), new LockOptions { Ttl = TimeSpan.FromSeconds(10) });
        var subscription = await client.Events.SubscribeAsync(null, SubscribeFrom.End);
        var watch = lease.Lost;
        await lease.DisposeAsync();
        subscription.Dispose();
        client.Dispose();
        for (int i = 0; i < 100 && (SyrosRuntime.LiveHandles != 0 || SyrosRuntime.PendingCalls != 0); i++) await Task.Delay(50);
        Equal(0L, SyrosRuntime.LiveHandles, "live native handles");
        Equal(0L, SyrosRuntime.PendingCalls, "pending native calls");
        Check(!watch.IsCancellationRequested, "a released lease is not reported lost");
    }

    private static int Main(string[] args)
    {
        var tests = new List<KeyValuePair<string, Func<Task>>>
        {
            new KeyValuePair<string, Func<Task>>("client_basics", ClientBasics),
            new KeyValuePair<string, Func<Task>>("lock_fencing_status_list_release", LockFencingStatusListRelease),
            new KeyValuePair<string, Func<Task>>("lock_timeout_is_typed", LockTimeoutIsTyped),
            new KeyValuePair<string, Func<Task>>("cancelled_wait_leaves_no_lease", CancelledWaitLeavesNoLease),
            new KeyValuePair<string, Func<Task>>("concurrent_tasks_keep_counter_exact", ConcurrentTasksKeepCounterExact),
            new KeyValuePair<string, Func<Task>>("lost_cancelled_when_server_gone_past_ttl", LostIsCancelledWhenServerGonePastTtl),
            new KeyValuePair<string, Func<Task>>("cache", Cache),
            new KeyValuePair<string, Func<Task>>("get_or_compute_single_flight", GetOrComputeSingleFlight),
            new KeyValuePair<string, Func<Task>>("events", Events),
            new KeyValuePair<string, Func<Task>>("saga_with_csharp_handlers_compensates", SagaWithCSharpHandlersCompensates),
            new KeyValuePair<string, Func<Task>>("saga_cancel", SagaCancel),
            new KeyValuePair<string, Func<Task>>("dispose_leaks_nothing", DisposeLeaksNothing),
        };
        var only = args.Length > 0 ? new HashSet<string>(args) : null;
        int passed = 0, failed = 0;
        try
        {
            server = TestServer.Start();
        }
        catch (Exception e)
        {
            Console.WriteLine("FAIL server: " + e.Message);
            Console.WriteLine("0 passed, 1 failed");
            return 1;
        }
        using (server)
        {
            foreach (var test in tests)
            {
                if (only != null && !only.Contains(test.Key)) continue;
                var watch = Stopwatch.StartNew();
                try
                {
                    var run = Task.Run(test.Value);
                    if (!run.Wait(TimeSpan.FromSeconds(120))) throw new TimeoutException("did not finish within 120 s");
                    Console.WriteLine("PASS " + test.Key + " (" + watch.ElapsedMilliseconds + " ms)");
                    passed++;
                }
                catch (Exception e)
                {
                    var inner = e is AggregateException ? ((AggregateException)e).InnerException : e;
                    Console.WriteLine("FAIL " + test.Key + ": " + inner);
                    failed++;
                }
            }
        }
        // Leases and subscriptions of failed tests may still run on the core runtime: stop it so
        // the process can exit (the tests above already dispose their clients).
        SyrosRuntime.Shutdown(TimeSpan.FromSeconds(2));
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }
}
