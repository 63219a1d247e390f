// The order saga with C# step handlers: reserve stock, charge the card, ship. An order over the
// card limit is declined (non-retryable), and the reservation is released by its compensation.
// Handlers use the task's idempotency key so a redelivered task does its work once.
//
//   mcs -r:Syros.Client.dll -r:System.Runtime.Serialization.dll Program.cs && mono Program.exe HOST:PORT
using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;
using Syros;

[DataContract]
internal sealed class Order
{
    [DataMember(Name = "id")] public string Id;
    [DataMember(Name = "amount")] public int Amount;
}

internal sealed class Inventory
{
    private readonly HashSet<string> seen = new HashSet<string>();
    public readonly HashSet<string> Reserved = new HashSet<string>();
    public readonly List<string> Journal = new List<string>();

    /// <summary>Runs <paramref name="action"/> once per idempotency key (a redelivery does nothing).</summary>
    public void Once(string key, Action action)
    {
        lock (seen)
        {
            if (seen.Add(key)) action();
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
            var service = "orders-" + Guid.NewGuid().ToString("N").Substring(0, 8);
            var inventory = new Inventory();
            var worker = client.Worker(service)
                .Handle("reserve", (task, ct) =>
                {
                    var order = task.Input<Order>();
                    inventory.Once(task.IdempotencyKey, () => { inventory.Reserved.Add(order.Id); inventory.Journal.Add("reserve " + order.Id); });
                    return Task.FromResult<object>(new { reservation = "res-" + order.Id });
                })
                .Handle("release", (task, ct) =>
                {
                    var order = task.Input<Order>();
                    inventory.Once(task.IdempotencyKey, () => { inventory.Reserved.Remove(order.Id); inventory.Journal.Add("release " + order.Id); });
                    return Task.FromResult<object>(null);
                })
                .Handle("charge", (task, ct) =>
                {
                    var order = task.Input<Order>();
                    if (order.Amount > 1000)
                        throw new TaskFailedException("card_declined", order.Amount + " is over the limit", nonRetryable: true);
                    var reserved = task.Output<Dictionary<string, string>>("reserve");
                    return Task.FromResult<object>(new { payment = "pay-" + order.Id, @for = reserved["reservation"] });
                })
                .Handle("ship", (task, ct) =>
                {
                    var order = task.Input<Order>();
                    inventory.Once(task.IdempotencyKey, () => inventory.Journal.Add("ship " + order.Id));
                    return Task.FromResult<object>(new { shipped = true });
                });
            var states = new Dictionary<string, string>();
            using (var stop = new CancellationTokenSource())
            {
                var running = worker.RunAsync(stop.Token);
                foreach (var order in new[] { new Order { Id = "A-1", Amount = 120 }, new Order { Id = "B-2", Amount = 5000 } })
                {
                    var definition = new SagaDefinition { Name = "order", Input = new { id = order.Id, amount = order.Amount }, IdempotencyKey = service + "-" + order.Id };
                    definition.Steps.Add(new SagaStep { Name = "reserve", Service = service, Action = "reserve", Compensation = "release" });
                    definition.Steps.Add(new SagaStep { Name = "charge", Service = service, Action = "charge" });
                    definition.Steps.Add(new SagaStep { Name = "ship", Service = service, Action = "ship" });
                    var saga = await client.Sagas.StartAsync(definition);
                    var final = await client.Sagas.WaitAsync(saga.Id, TimeSpan.FromSeconds(30));
                    Console.WriteLine("order " + order.Id + ": saga " + final.Id + " ended " + final.State);
                    states[order.Id] = final.State;
                }
                stop.Cancel();
                await running;
            }
            Console.WriteLine("journal: " + string.Join(", ", inventory.Journal));
            var ok = states["A-1"] == "completed" && states["B-2"] == "compensated"
                && inventory.Reserved.Count == 1 && inventory.Reserved.Contains("A-1")
                && string.Join(",", inventory.Journal) == "reserve A-1,ship A-1,reserve B-2,release B-2";
            if (!ok)
            {
                Console.WriteLine("ordersaga: unexpected outcome");
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
