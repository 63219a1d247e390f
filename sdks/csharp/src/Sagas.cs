using System;
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    /// <summary>A retry policy for saga steps.</summary>
    public sealed class StepRetry
    {
        /// <summary>Delay before the first retry.</summary>
        public TimeSpan InitialInterval { get; set; } = TimeSpan.FromSeconds(1);
        /// <summary>Multiplier per retry.</summary>
        public double BackoffCoefficient { get; set; } = 2.0;
        /// <summary>The longest delay.</summary>
        public TimeSpan MaximumInterval { get; set; } = TimeSpan.FromSeconds(60);
        /// <summary>Attempts in all (1 = no retry).</summary>
        public int MaximumAttempts { get; set; } = 3;
        /// <summary>Error types that fail the step at once.</summary>
        public IList<string> NonRetryableErrors { get; set; }

        internal static StepRetryRecord Record(StepRetry r)
        {
            if (r == null) return null;
            return new StepRetryRecord
            {
                InitialIntervalMs = SyrosClient.Millis(r.InitialInterval) ?? 0,
                BackoffCoefficient = r.BackoffCoefficient,
                MaximumIntervalMs = SyrosClient.Millis(r.MaximumInterval) ?? 0,
                MaximumAttempts = (uint)Math.Max(0, r.MaximumAttempts),
                NonRetryableErrors = r.NonRetryableErrors == null ? null : new List<string>(r.NonRetryableErrors),
            };
        }
    }

    /// <summary>One step of a saga.</summary>
    public sealed class SagaStep
    {
        /// <summary>The step's name (its output is keyed by it).</summary>
        public string Name { get; set; }
        /// <summary>The service whose workers run it.</summary>
        public string Service { get; set; }
        /// <summary>The action handler's name.</summary>
        public string Action { get; set; }
        /// <summary>The compensation handler's name (null = nothing to undo).</summary>
        public string Compensation { get; set; }
        /// <summary>Timeout of one attempt (null = the server's default).</summary>
        public TimeSpan? Timeout { get; set; }
        /// <summary>The step's retry policy (null = the saga's).</summary>
        public StepRetry Retry { get; set; }
    }

    /// <summary>A saga to start.</summary>
    public sealed class SagaDefinition
    {
        /// <summary>Creates an empty definition (add steps).</summary>
        public SagaDefinition() { Steps = new List<SagaStep>(); }
        /// <summary>The saga's name.</summary>
        public string Name { get; set; }
        /// <summary>The steps, run in order; completed ones are compensated in reverse on failure.</summary>
        public IList<SagaStep> Steps { get; private set; }
        /// <summary>The input handed to every step (JSON-encoded by <see cref="JsonValue.Encode"/>).</summary>
        public object Input { get; set; }
        /// <summary>Starting twice with the same key starts one saga.</summary>
        public string IdempotencyKey { get; set; }
        /// <summary>The default retry policy of its steps.</summary>
        public StepRetry Retry { get; set; }
    }

    [DataContract]
    internal sealed class StepRetryRecord
    {
        [DataMember(Name = "initial_interval_ms", Order = 0)] public ulong InitialIntervalMs;
        [DataMember(Name = "backoff_coefficient", Order = 1)] public double BackoffCoefficient;
        [DataMember(Name = "maximum_interval_ms", Order = 2)] public ulong MaximumIntervalMs;
        [DataMember(Name = "maximum_attempts", Order = 3)] public uint MaximumAttempts;
        [DataMember(Name = "non_retryable_errors", EmitDefaultValue = false, Order = 4)] public List<string> NonRetryableErrors;
    }

    [DataContract]
    internal sealed class StepInRecord
    {
        [DataMember(Name = "name", Order = 0)] public string Name;
        [DataMember(Name = "service", Order = 1)] public string Service;
        [DataMember(Name = "action", Order = 2)] public string Action;
        [DataMember(Name = "compensation", EmitDefaultValue = false, Order = 3)] public string Compensation;
        [DataMember(Name = "timeout_ms", Order = 4)] public ulong TimeoutMs;
        [DataMember(Name = "retry", EmitDefaultValue = false, Order = 5)] public StepRetryRecord Retry;
    }

    [DataContract]
    internal sealed class StartSagaRecord
    {
        [DataMember(Name = "name", Order = 0)] public string Name;
        [DataMember(Name = "steps", Order = 1)] public List<StepInRecord> Steps;
        [DataMember(Name = "input_json", Order = 2)] public string InputJson;
        [DataMember(Name = "idempotency_key", EmitDefaultValue = false, Order = 3)] public string IdempotencyKey;
        [DataMember(Name = "retry", EmitDefaultValue = false, Order = 4)] public StepRetryRecord Retry;
    }

    [DataContract]
    internal sealed class SagaFilterRecord
    {
        [DataMember(Name = "state", EmitDefaultValue = false, Order = 0)] public string State;
        [DataMember(Name = "name", EmitDefaultValue = false, Order = 1)] public string Name;
        [DataMember(Name = "limit", Order = 2)] public uint Limit;
    }

    [DataContract]
    internal sealed class AttemptRecord
    {
        [DataMember(Name = "attempt")] public uint Attempt;
        [DataMember(Name = "kind")] public string Kind;
        [DataMember(Name = "started_at_ms")] public long StartedAtMs;
        [DataMember(Name = "finished_at_ms")] public long FinishedAtMs;
        [DataMember(Name = "error_type")] public string ErrorType;
        [DataMember(Name = "error_message")] public string ErrorMessage;
    }

    [DataContract]
    internal sealed class StepRecord
    {
        [DataMember(Name = "name")] public string Name;
        [DataMember(Name = "service")] public string Service;
        [DataMember(Name = "action")] public string Action;
        [DataMember(Name = "compensation")] public string Compensation;
        [DataMember(Name = "state")] public string State;
        [DataMember(Name = "output_json")] public string OutputJson;
        [DataMember(Name = "attempts")] public List<AttemptRecord> Attempts;
    }

    [DataContract]
    internal sealed class SagaRecord
    {
        [DataMember(Name = "saga_id")] public string SagaId;
        [DataMember(Name = "name")] public string Name;
        [DataMember(Name = "state")] public string State;
        [DataMember(Name = "input_json")] public string InputJson;
        [DataMember(Name = "idempotency_key")] public string IdempotencyKey;
        [DataMember(Name = "steps")] public List<StepRecord> Steps;
        [DataMember(Name = "created_at_ms")] public long CreatedAtMs;
        [DataMember(Name = "updated_at_ms")] public long UpdatedAtMs;
        [DataMember(Name = "error")] public string Error;
    }

    /// <summary>One attempt of a step (action or compensation).</summary>
    public sealed class StepAttempt
    {
        /// <summary>1 for the first.</summary>
        public uint Attempt { get; internal set; }
        /// <summary><c>action</c> or <c>compensation</c>.</summary>
        public string Kind { get; internal set; }
        /// <summary>The failure's type (null = it succeeded).</summary>
        public string ErrorType { get; internal set; }
        /// <summary>The failure's message.</summary>
        public string ErrorMessage { get; internal set; }
    }

    /// <summary>A step's state within a saga.</summary>
    public sealed class SagaStepInfo
    {
        /// <summary>The step's name.</summary>
        public string Name { get; internal set; }
        /// <summary>Its service.</summary>
        public string Service { get; internal set; }
        /// <summary>Its action handler.</summary>
        public string Action { get; internal set; }
        /// <summary>Its compensation handler (null = none).</summary>
        public string Compensation { get; internal set; }
        /// <summary>Its state (<c>pending</c>, <c>completed</c>, <c>compensated</c>, ...).</summary>
        public string State { get; internal set; }
        /// <summary>Its output as JSON text (null = none yet).</summary>
        public string OutputJson { get; internal set; }
        /// <summary>Its attempts, in order.</summary>
        public IReadOnlyList<StepAttempt> Attempts { get; internal set; }
    }

    /// <summary>A saga as the server has it.</summary>
    public sealed class Saga
    {
        /// <summary>Its id.</summary>
        public string Id { get; internal set; }
        /// <summary>Its name.</summary>
        public string Name { get; internal set; }
        /// <summary>Its state: <c>running</c>, <c>compensating</c>, <c>completed</c>, <c>compensated</c>, <c>failed</c>, <c>cancelled</c>.</summary>
        public string State { get; internal set; }
        /// <summary>Its input as JSON text.</summary>
        public string InputJson { get; internal set; }
        /// <summary>Its idempotency key (null = none).</summary>
        public string IdempotencyKey { get; internal set; }
        /// <summary>Its steps.</summary>
        public IReadOnlyList<SagaStepInfo> Steps { get; internal set; }
        /// <summary>Why it failed (null = it did not).</summary>
        public string Error { get; internal set; }
        /// <summary>When it was created.</summary>
        public DateTimeOffset CreatedAt { get; internal set; }
        /// <summary>When it last changed.</summary>
        public DateTimeOffset UpdatedAt { get; internal set; }
        /// <summary>Whether it reached a final state.</summary>
        public bool IsFinal { get { return State != "running" && State != "compensating" && State != "pending"; } }

        internal static Saga From(SagaRecord r)
        {
            if (r == null) return null;
            var steps = new List<SagaStepInfo>();
            foreach (var s in r.Steps ?? new List<StepRecord>())
            {
                var attempts = new List<StepAttempt>();
                foreach (var a in s.Attempts ?? new List<AttemptRecord>())
                    attempts.Add(new StepAttempt { Attempt = a.Attempt, Kind = a.Kind, ErrorType = a.ErrorType, ErrorMessage = a.ErrorMessage });
                steps.Add(new SagaStepInfo { Name = s.Name, Service = s.Service, Action = s.Action, Compensation = s.Compensation, State = s.State, OutputJson = s.OutputJson, Attempts = attempts });
            }
            return new Saga
            {
                Id = r.SagaId,
                Name = r.Name,
                State = r.State,
                InputJson = r.InputJson,
                IdempotencyKey = r.IdempotencyKey,
                Steps = steps,
                Error = r.Error,
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAtMs),
                UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(r.UpdatedAtMs),
            };
        }
    }

    /// <summary>Sagas (<see cref="SyrosClient.Sagas"/>); run their steps with <see cref="SyrosClient.Worker"/>.</summary>
    public sealed class SagasClient
    {
        private readonly SyrosClient client;

        internal SagasClient(SyrosClient client) { this.client = client; }

        private async Task<Saga> SagaCall(Func<CancelHandle, NativeCallback, UIntPtr, int> start, CancellationToken token)
        {
            var result = await client.Call(start, token).ConfigureAwait(false);
            return Saga.From(result.Decode<SagaRecord>());
        }

        /// <summary>Starts a saga.</summary>
        public Task<Saga> StartAsync(SagaDefinition definition, CancellationToken cancellationToken = default(CancellationToken))
        {
            var steps = new List<StepInRecord>();
            foreach (var s in definition.Steps)
            {
                steps.Add(new StepInRecord
                {
                    Name = s.Name,
                    Service = s.Service,
                    Action = s.Action,
                    Compensation = s.Compensation,
                    TimeoutMs = SyrosClient.Millis(s.Timeout) ?? 0,
                    Retry = StepRetry.Record(s.Retry),
                });
            }
            var body = Json<StartSagaRecord>.Write(new StartSagaRecord
            {
                Name = definition.Name,
                Steps = steps,
                InputJson = definition.Input == null ? "{}" : JsonValue.Encode(definition.Input),
                IdempotencyKey = definition.IdempotencyKey,
                Retry = StepRetry.Record(definition.Retry),
            });
            return SagaCall((c, cb, ud) => NativeMethods.syros_client_start_saga(client.Handle, body, Native.Len(body), c, cb, ud), cancellationToken);
        }

        /// <summary>One saga.</summary>
        /// <exception cref="NotFoundException">no saga has that id.</exception>
        public Task<Saga> GetAsync(string sagaId, CancellationToken cancellationToken = default(CancellationToken))
        {
            var id = Native.Utf8(sagaId);
            return SagaCall((c, cb, ud) => NativeMethods.syros_client_get_saga(client.Handle, id, Native.Len(id), c, cb, ud), cancellationToken);
        }

        /// <summary>Sagas, newest first, filtered by state and name (null = any; limit 0 = the server's default).</summary>
        public async Task<IReadOnlyList<Saga>> ListAsync(string state = null, string name = null, int limit = 0, CancellationToken cancellationToken = default(CancellationToken))
        {
            var body = Json<SagaFilterRecord>.Write(new SagaFilterRecord { State = state, Name = name, Limit = (uint)Math.Max(0, limit) });
            var result = await client.Call((c, cb, ud) => NativeMethods.syros_client_list_sagas(client.Handle, body, Native.Len(body), c, cb, ud), cancellationToken).ConfigureAwait(false);
            var list = new List<Saga>();
            foreach (var r in result.Decode<List<SagaRecord>>() ?? new List<SagaRecord>()) list.Add(Saga.From(r));
            return list;
        }

        /// <summary>Cancels a saga: what completed is compensated.</summary>
        public Task<Saga> CancelAsync(string sagaId, CancellationToken cancellationToken = default(CancellationToken))
        {
            var id = Native.Utf8(sagaId);
            return SagaCall((c, cb, ud) => NativeMethods.syros_client_cancel_saga(client.Handle, id, Native.Len(id), c, cb, ud), cancellationToken);
        }

        /// <summary>Waits until the saga is final, at most <paramref name="timeout"/>.</summary>
        /// <exception cref="DeadlineExceededException">it was not final in time.</exception>
        public Task<Saga> WaitAsync(string sagaId, TimeSpan timeout, CancellationToken cancellationToken = default(CancellationToken))
        {
            var id = Native.Utf8(sagaId);
            ulong ms = SyrosClient.Millis(timeout) ?? 0;
            return SagaCall((c, cb, ud) => NativeMethods.syros_client_wait_saga(client.Handle, id, Native.Len(id), ms, c, cb, ud), cancellationToken);
        }
    }
}
