using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    [DataContract]
    internal sealed class TaskRecord
    {
        [DataMember(Name = "task_id")] public string TaskId;
        [DataMember(Name = "saga_id")] public string SagaId;
        [DataMember(Name = "step_name")] public string StepName;
        [DataMember(Name = "handler")] public string Handler;
        [DataMember(Name = "is_compensation")] public bool IsCompensation;
        [DataMember(Name = "attempt")] public uint Attempt;
        [DataMember(Name = "idempotency_key")] public string IdempotencyKey;
        [DataMember(Name = "input_json")] public string InputJson;
        [DataMember(Name = "previous_outputs_json")] public string PreviousOutputsJson;
        [DataMember(Name = "timeout_ms")] public ulong TimeoutMs;
    }

    [DataContract]
    internal sealed class TaskOutcomeRecord
    {
        [DataMember(Name = "outcome", Order = 0)] public string Outcome;
        [DataMember(Name = "output_json", EmitDefaultValue = false, Order = 1)] public string OutputJson;
        [DataMember(Name = "error_type", EmitDefaultValue = false, Order = 2)] public string ErrorType;
        [DataMember(Name = "message", EmitDefaultValue = false, Order = 3)] public string Message;
        [DataMember(Name = "non_retryable", EmitDefaultValue = false, Order = 4)] public bool NonRetryable;
    }

    /// <summary>
    /// Thrown by a step handler to fail the task with a type (matched against the retry policy's
    /// non-retryable errors) or for good. Any other exception fails it as <c>TaskFailure</c>.
    /// </summary>
    public class TaskFailedException : Exception
    {
        /// <summary>Fails the task with <paramref name="errorType"/>.</summary>
        public TaskFailedException(string errorType, string message, bool nonRetryable = false) : base(message)
        {
            ErrorType = string.IsNullOrEmpty(errorType) ? "TaskFailure" : errorType;
            NonRetryable = nonRetryable;
        }

        /// <summary>The failure's type.</summary>
        public string ErrorType { get; private set; }
        /// <summary>Fail the step for good (no retry).</summary>
        public bool NonRetryable { get; private set; }
    }

    /// <summary>A saga step to run, handed to a handler.</summary>
    public sealed class SagaTask
    {
        private readonly SagaWorker worker;
        private readonly TaskRecord record;

        internal SagaTask(SagaWorker worker, TaskRecord record)
        {
            this.worker = worker;
            this.record = record;
        }

        /// <summary>The task's id.</summary>
        public string Id { get { return record.TaskId; } }
        /// <summary>The saga it belongs to.</summary>
        public string SagaId { get { return record.SagaId; } }
        /// <summary>The step it runs.</summary>
        public string StepName { get { return record.StepName; } }
        /// <summary>The handler's name.</summary>
        public string Handler { get { return record.Handler; } }
        /// <summary>Whether it is a compensation.</summary>
        public bool IsCompensation { get { return record.IsCompensation; } }
        /// <summary>1 for the first attempt.</summary>
        public uint Attempt { get { return record.Attempt; } }
        /// <summary>The same for every redelivery and retry of this step's action (or compensation).</summary>
        public string IdempotencyKey { get { return record.IdempotencyKey; } }
        /// <summary>The saga's input as JSON text.</summary>
        public string InputJson { get { return record.InputJson; } }
        /// <summary>The outputs of completed steps, by step name, as a JSON object.</summary>
        public string PreviousOutputsJson { get { return record.PreviousOutputsJson; } }
        /// <summary>The attempt's timeout (the handler's token is cancelled then).</summary>
        public TimeSpan Timeout { get { return TimeSpan.FromMilliseconds(record.TimeoutMs); } }

        /// <summary>The saga's input decoded into a data contract type (or a dictionary).</summary>
        public T Input<T>() { return JsonValue.Decode<T>(InputJson); }

        /// <summary>The output of the completed step <paramref name="step"/>, decoded; default when it has none.</summary>
        public T Output<T>(string step)
        {
            var outputs = JsonValue.Decode<Dictionary<string, T>>(PreviousOutputsJson);
            T value;
            return outputs != null && outputs.TryGetValue(step, out value) ? value : default(T);
        }

        /// <summary>Whether the task is still assigned to this worker.</summary>
        public async Task<bool> HeartbeatAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            var id = Native.Utf8(Id);
            var handle = worker.RunningHandle();
            var result = await Native.CallAsync((c, cb, ud) => NativeMethods.syros_worker_heartbeat(handle, id, Native.Len(id), c, cb, ud), cancellationToken).ConfigureAwait(false);
            return result.Decode<bool>();
        }
    }

    /// <summary>
    /// A saga step runner for one service: register handlers with <see cref="Handle"/>, then
    /// <see cref="RunAsync"/> pulls tasks and runs the handlers on the thread pool.
    /// </summary>
    public sealed class SagaWorker
    {
        private readonly SyrosClient client;
        private readonly string service;
        private readonly int maxConcurrent;
        private readonly Dictionary<string, Func<SagaTask, CancellationToken, Task<object>>> handlers =
            new Dictionary<string, Func<SagaTask, CancellationToken, Task<object>>>();
        private WorkerHandle running;

        internal SagaWorker(SyrosClient client, string service, int maxConcurrent)
        {
            this.client = client;
            this.service = service;
            this.maxConcurrent = maxConcurrent;
        }

        /// <summary>The service this worker runs steps for.</summary>
        public string Service { get { return service; } }

        /// <summary>
        /// Registers the handler of the action or compensation named <paramref name="name"/>. Its
        /// result is JSON-encoded as the step's output (<see cref="JsonValue.Encode"/>; null = <c>{}</c>).
        /// Its token is cancelled at the task's timeout.
        /// </summary>
        public SagaWorker Handle(string name, Func<SagaTask, CancellationToken, Task<object>> handler)
        {
            lock (handlers) handlers[name] = handler;
            return this;
        }

        internal WorkerHandle RunningHandle()
        {
            var handle = running;
            if (handle == null) throw SyrosException.Closed();
            return handle;
        }

        /// <summary>
        /// Registers with the server and runs tasks until <paramref name="cancellationToken"/> is
        /// cancelled; then stops taking tasks, waits for the handlers in flight to report, and
        /// returns. Throws when the worker cannot start or its task feed fails.
        /// </summary>
        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var s = Native.Utf8(service);
            CallResult started;
            try
            {
                started = await client.Call((c, cb, ud) => NativeMethods.syros_client_worker(client.Handle, s, Native.Len(s), (uint)maxConcurrent, c, cb, ud), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            using (var handle = new WorkerHandle())
            {
                handle.Adopt(started.Worker);
                started.Worker = IntPtr.Zero;
                if (Interlocked.CompareExchange(ref running, handle, null) != null)
                    throw new InvalidOperationException("this worker is already running");
                var inFlight = new List<Task>();
                Exception feedError = null;
                try
                {
                    while (!cancellationToken.IsCancellationRequested)
                    {
                        CallResult polled;
                        try
                        {
                            polled = await Native.CallAsync((c, cb, ud) => NativeMethods.syros_worker_poll_task(handle, -1, c, cb, ud), cancellationToken).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException)
                        {
                            break;
                        }
                        catch (Exception e)
                        {
                            feedError = e;
                            break;
                        }
                        var record = polled.Decode<TaskRecord>();
                        if (record == null) break; // the worker was stopped
                        var task = new SagaTask(this, record);
                        inFlight.RemoveAll(t => t.IsCompleted);
                        inFlight.Add(Task.Run(() => RunTaskAsync(handle, task)));
                    }
                }
                finally
                {
                    NativeMethods.syros_worker_stop(handle);
                    await Task.WhenAll(inFlight.ToArray()).ConfigureAwait(false);
                    try
                    {
                        await Native.CallAsync((c, cb, ud) => NativeMethods.syros_worker_stop_and_drain(handle, c, cb, ud), CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (SyrosException)
                    {
                        // Stopping is best effort: the runtime may be shutting down.
                    }
                    Interlocked.Exchange(ref running, null);
                }
                if (feedError != null) throw feedError;
            }
        }

        private async Task RunTaskAsync(WorkerHandle handle, SagaTask task)
        {
            Func<SagaTask, CancellationToken, Task<object>> handler;
            lock (handlers) handlers.TryGetValue(task.Handler, out handler);
            TaskOutcomeRecord outcome;
            if (handler == null)
            {
                outcome = new TaskOutcomeRecord
                {
                    Outcome = "failed",
                    ErrorType = "unknown_handler",
                    NonRetryable = true,
                    Message = "no handler \"" + task.Handler + "\" registered on the C# worker of service \"" + service + "\"",
                };
            }
            else
            {
                var timeout = task.Timeout > TimeSpan.Zero ? task.Timeout : TimeSpan.FromHours(1);
                using (var deadline = new CancellationTokenSource(timeout))
                {
                    try
                    {
                        var output = await handler(task, deadline.Token).ConfigureAwait(false);
                        outcome = new TaskOutcomeRecord { Outcome = "completed", OutputJson = output == null ? "{}" : JsonValue.Encode(output) };
                    }
                    catch (TaskFailedException e)
                    {
                        outcome = new TaskOutcomeRecord { Outcome = "failed", ErrorType = e.ErrorType, Message = e.Message, NonRetryable = e.NonRetryable };
                    }
                    catch (Exception e)
                    {
                        outcome = new TaskOutcomeRecord { Outcome = "failed", ErrorType = "TaskFailure", Message = e.GetType().Name + ": " + e.Message };
                    }
                }
            }
            var id = Native.Utf8(task.Id);
            var body = Json<TaskOutcomeRecord>.Write(outcome);
            try
            {
                await Native.CallAsync((c, cb, ud) => NativeMethods.syros_worker_complete(handle, id, Native.Len(id), body, Native.Len(body), c, cb, ud), CancellationToken.None).ConfigureAwait(false);
            }
            catch (SyrosException)
            {
                // The server redelivers a task whose outcome did not arrive (after its timeout).
            }
        }
    }
}
