// A fenced critical section: four workers append to one "ledger" under a Syros lock, and the
// ledger (a stand-in for a database) refuses any write carrying a fencing token older than one it
// has seen. The work runs under lease.Lost, so it stops if the lock is lost mid-way.
//
//   mcs -r:Syros.Client.dll Program.cs && mono Program.exe HOST:PORT
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Syros;

internal sealed class Ledger
{
    private readonly object gate = new object();
    private ulong highestToken;
    public readonly List<string> Entries = new List<string>();

    /// <summary>Applies a write only if its fencing token is not older than any seen.</summary>
    public bool Write(ulong fencingToken, string entry)
    {
        lock (gate)
        {
            if (fencingToken < highestToken) return false;
            highestToken = fencingToken;
            Entries.Add(entry);
            return true;
        }
    }
}

internal static class Program
{
    private static async Task<int> RunAsync(string address)
    {
        var options = new ClientOptions();
        options.Addresses.Add(address);
        using (var client = await SyrosClient.ConnectAsync(options))
        {
            var key = "ledger:" + Guid.NewGuid().ToString("N");
            var ledger = new Ledger();
            var workers = Enumerable.Range(1, 4).Select(async worker =>
            {
                for (int i = 0; i < 3; i++)
                {
                    var lease = await client.LockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10), Wait = TimeSpan.FromSeconds(30) });
                    try
                    {
                        CancellationToken lost = lease.Lost;
                        await Task.Delay(10, lost); // the protected work, cut short if the lock is lost
                        if (!ledger.Write(lease.FencingToken, "worker " + worker + " entry " + i))
                            throw new InvalidOperationException("the ledger refused token " + lease.FencingToken);
                    }
                    finally
                    {
                        await lease.DisposeAsync();
                    }
                }
            }).ToArray();
            await Task.WhenAll(workers);
            Console.WriteLine("fenced: " + ledger.Entries.Count + " ledger entries written under the lock");
            if (ledger.Entries.Count != 12)
            {
                Console.WriteLine("fenced: expected 12 entries");
                return 1;
            }
            var status = await client.LockStatusAsync(key);
            if (status != null)
            {
                Console.WriteLine("fenced: the lock is still held by " + status.Owner);
                return 1;
            }
        }
        return 0;
    }

    private static int Main(string[] args)
    {
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: Program.exe HOST:PORT");
            return 2;
        }
        return RunAsync(args[0]).GetAwaiter().GetResult();
    }
}
