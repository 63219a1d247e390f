// A program built against the installed Syros.Client package (not the source tree): it takes a
// fenced lock, uses the cache, and exits by itself. scripts/csharp-sdk.sh packs the package,
// installs it from a local folder feed with `nuget install`, compiles this against
// lib/netstandard2.0/Syros.Client.dll and runs it with the package's runtimes/linux-x64/native.
//
//   mono Consumer.exe 127.0.0.1:9090
using System;
using System.Threading.Tasks;
using Syros;

internal static class Program
{
    private static async Task<int> RunAsync(string address)
    {
        var options = new ClientOptions();
        options.Addresses.Add(address);
        using (var client = await SyrosClient.ConnectAsync(options))
        {
            var key = "consumer:" + Guid.NewGuid().ToString("N");
            var lease = await client.LockAsync(key, new LockOptions { Ttl = TimeSpan.FromSeconds(10) });
            await client.Cache.SetAsync(key, "fenced by " + lease.FencingToken);
            var value = await client.Cache.GetStringAsync(key);
            await lease.DisposeAsync();
            if (value != "fenced by " + lease.FencingToken)
            {
                Console.WriteLine("consumer: unexpected cache value " + value);
                return 1;
            }
            Console.WriteLine("consumer: lock " + key + " fencing token " + lease.FencingToken + ", cache round trip ok");
        }
        return 0;
    }

    private static int Main(string[] args)
    {
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: Consumer.exe HOST:PORT");
            return 2;
        }
        return RunAsync(args[0]).GetAwaiter().GetResult();
    }
}
