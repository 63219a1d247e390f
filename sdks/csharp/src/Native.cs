// P/Invoke into the Syros C ABI (ffi/include/syros.h; conventions in ffi/README.md). Everything
// here is internal: the public API wraps it in SafeHandles and Tasks.
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Syros
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeBuffer
    {
        public IntPtr Data;
        public UIntPtr Len;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeOutcome
    {
        public int Status;
        public IntPtr Json;
        public UIntPtr JsonLen;
        public IntPtr Lease;
        public IntPtr Subscription;
        public IntPtr Worker;
        public IntPtr Ticket;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeCallback(UIntPtr userData, IntPtr outcome);

    /// <summary>A native handle freed exactly once with its <c>*_free</c> entry point.</summary>
    internal abstract class SyrosHandle : SafeHandle
    {
        protected SyrosHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        internal void Adopt(IntPtr pointer) { SetHandle(pointer); }
    }

    internal sealed class ClientHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_client_free(handle); return true; }
    }

    internal sealed class LeaseHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_lease_free(handle); return true; }
    }

    internal sealed class SubscriptionHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_subscription_free(handle); return true; }
    }

    internal sealed class WorkerHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_worker_free(handle); return true; }
    }

    internal sealed class TicketHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_ticket_free(handle); return true; }
    }

    internal sealed class CancelHandle : SyrosHandle
    {
        protected override bool ReleaseHandle() { NativeMethods.syros_cancel_free(handle); return true; }
    }

    internal static class NativeMethods
    {
        // Mono resolves this to libsyros_ffi.so (LD_LIBRARY_PATH or next to the assembly); .NET
        // finds it under runtimes/linux-x64/native/ of the package.
        private const string Lib = "syros_ffi";
        internal const int Ok = 0;

        [DllImport(Lib)] internal static extern uint syros_abi_version();
        [DllImport(Lib)] internal static extern void syros_buffer_free(NativeBuffer buffer);
        [DllImport(Lib)] internal static extern long syros_live_handles();
        [DllImport(Lib)] internal static extern long syros_pending_calls();
        [DllImport(Lib)] internal static extern void syros_shutdown(ulong timeoutMs);
        [DllImport(Lib)] internal static extern CancelHandle syros_cancel_new();
        [DllImport(Lib)] internal static extern void syros_cancel_cancel(CancelHandle cancel);
        [DllImport(Lib)] internal static extern void syros_cancel_free(IntPtr cancel);

        [DllImport(Lib)] internal static extern int syros_client_new(byte[] config, UIntPtr len, out IntPtr client, out NativeBuffer error);
        [DllImport(Lib)] internal static extern void syros_client_close(ClientHandle client);
        [DllImport(Lib)] internal static extern void syros_client_free(IntPtr client);
        [DllImport(Lib)] internal static extern int syros_client_set_auth_token(ClientHandle client, byte[] token, UIntPtr len, out NativeBuffer error);
        [DllImport(Lib)] internal static extern int syros_client_owner(ClientHandle client, out NativeBuffer result);
        [DllImport(Lib)] internal static extern int syros_client_stats(ClientHandle client, out NativeBuffer result);
        [DllImport(Lib)] internal static extern int syros_client_connect(ClientHandle client, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_check_health(ClientHandle client, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_lock(ClientHandle client, byte[] key, UIntPtr keyLen, byte[] req, UIntPtr reqLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_try_lock(ClientHandle client, byte[] key, UIntPtr keyLen, byte[] req, UIntPtr reqLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_lock_status(ClientHandle client, byte[] key, UIntPtr keyLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_list_locks(ClientHandle client, byte[] prefix, UIntPtr prefixLen, uint limit, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_force_release(ClientHandle client, byte[] key, UIntPtr keyLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cache_get(ClientHandle client, byte[] key, UIntPtr keyLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cache_set(ClientHandle client, byte[] key, UIntPtr keyLen, byte[] value, UIntPtr valueLen, byte[] set, UIntPtr setLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cache_delete(ClientHandle client, byte[] key, UIntPtr keyLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cache_invalidate_tag(ClientHandle client, byte[] tag, UIntPtr tagLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cache_begin(ClientHandle client, byte[] key, UIntPtr keyLen, byte[] set, UIntPtr setLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_append(ClientHandle client, byte[] stream, UIntPtr streamLen, byte[] events, UIntPtr eventsLen, byte[] expected, UIntPtr expectedLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_read(ClientHandle client, byte[] req, UIntPtr reqLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_subscribe(ClientHandle client, byte[] stream, UIntPtr streamLen, byte[] start, UIntPtr startLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_start_saga(ClientHandle client, byte[] saga, UIntPtr sagaLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_get_saga(ClientHandle client, byte[] id, UIntPtr idLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_list_sagas(ClientHandle client, byte[] filter, UIntPtr filterLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_cancel_saga(ClientHandle client, byte[] id, UIntPtr idLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_wait_saga(ClientHandle client, byte[] id, UIntPtr idLen, ulong timeoutMs, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_client_worker(ClientHandle client, byte[] service, UIntPtr serviceLen, uint maxConcurrent, CancelHandle cancel, NativeCallback cb, UIntPtr ud);

        [DllImport(Lib)] internal static extern int syros_lease_info(LeaseHandle lease, out NativeBuffer result);
        [DllImport(Lib)] [return: MarshalAs(UnmanagedType.I1)] internal static extern bool syros_lease_is_lost(LeaseHandle lease);
        [DllImport(Lib)] [return: MarshalAs(UnmanagedType.I1)] internal static extern bool syros_lease_is_held(LeaseHandle lease);
        [DllImport(Lib)] internal static extern int syros_lease_release(LeaseHandle lease, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_lease_renew(LeaseHandle lease, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_lease_wait_end(LeaseHandle lease, long timeoutMs, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern void syros_lease_free(IntPtr lease);

        [DllImport(Lib)] internal static extern int syros_subscription_next(SubscriptionHandle sub, long timeoutMs, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern void syros_subscription_close(SubscriptionHandle sub);
        [DllImport(Lib)] internal static extern void syros_subscription_free(IntPtr sub);

        [DllImport(Lib)] internal static extern int syros_worker_id(WorkerHandle worker, out NativeBuffer result);
        [DllImport(Lib)] internal static extern int syros_worker_poll_task(WorkerHandle worker, long timeoutMs, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_worker_complete(WorkerHandle worker, byte[] taskId, UIntPtr taskIdLen, byte[] outcome, UIntPtr outcomeLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_worker_heartbeat(WorkerHandle worker, byte[] taskId, UIntPtr taskIdLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern ulong syros_worker_outstanding(WorkerHandle worker);
        [DllImport(Lib)] internal static extern void syros_worker_stop(WorkerHandle worker);
        [DllImport(Lib)] internal static extern int syros_worker_stop_and_drain(WorkerHandle worker, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern void syros_worker_free(IntPtr worker);

        [DllImport(Lib)] internal static extern int syros_ticket_key(TicketHandle ticket, out NativeBuffer result);
        [DllImport(Lib)] internal static extern int syros_ticket_complete(TicketHandle ticket, byte[] value, UIntPtr valueLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern int syros_ticket_fail(TicketHandle ticket, byte[] message, UIntPtr messageLen, CancelHandle cancel, NativeCallback cb, UIntPtr ud);
        [DllImport(Lib)] internal static extern void syros_ticket_free(IntPtr ticket);
    }

    /// <summary>A finished asynchronous call, copied out of its callback.</summary>
    internal sealed class CallResult
    {
        internal bool Ok;
        internal byte[] Json;
        internal IntPtr Lease, Subscription, Worker, Ticket;

        /// <summary>Frees the objects nobody will take (a call cancelled after it produced them).</summary>
        internal void FreeHandles()
        {
            if (Lease != IntPtr.Zero) NativeMethods.syros_lease_free(Lease);
            if (Subscription != IntPtr.Zero) NativeMethods.syros_subscription_free(Subscription);
            if (Worker != IntPtr.Zero) NativeMethods.syros_worker_free(Worker);
            if (Ticket != IntPtr.Zero) NativeMethods.syros_ticket_free(Ticket);
            Lease = Subscription = Worker = Ticket = IntPtr.Zero;
        }

        internal T Decode<T>() { return Json<T>.Read(Json); }
    }

    /// <summary>Starts one asynchronous C call with its cancel switch, callback and user data.</summary>
    internal delegate int Starter(CancelHandle cancel, NativeCallback callback, UIntPtr userData);

    /// <summary>The bridge from C callbacks to Tasks.</summary>
    internal static class Native
    {
        // Kept in a static field so the delegate (and its native thunk) outlives every call.
        private static readonly NativeCallback Callback = OnComplete;
        internal static readonly byte[] Empty = new byte[0];

        static Native()
        {
            uint version = NativeMethods.syros_abi_version();
            if (version != 1)
                throw new InvalidOperationException("libsyros_ffi has ABI version " + version + "; this Syros.Client needs 1");
        }

        internal static byte[] Utf8(string s) { return s == null ? null : Encoding.UTF8.GetBytes(s); }
        internal static UIntPtr Len(byte[] b) { return new UIntPtr(b == null ? 0u : (uint)b.Length); }

        private static void OnComplete(UIntPtr userData, IntPtr outcomePtr)
        {
            // On a runtime thread: copy the outcome and hand it over; continuations run on the
            // thread pool (RunContinuationsAsynchronously), never here.
            var handle = GCHandle.FromIntPtr(new IntPtr((long)userData.ToUInt64()));
            var source = (TaskCompletionSource<CallResult>)handle.Target;
            handle.Free();
            var outcome = (NativeOutcome)Marshal.PtrToStructure(outcomePtr, typeof(NativeOutcome));
            var json = new byte[(int)outcome.JsonLen.ToUInt64()];
            if (json.Length > 0) Marshal.Copy(outcome.Json, json, 0, json.Length);
            source.TrySetResult(new CallResult
            {
                Ok = outcome.Status == NativeMethods.Ok,
                Json = json,
                Lease = outcome.Lease,
                Subscription = outcome.Subscription,
                Worker = outcome.Worker,
                Ticket = outcome.Ticket,
            });
        }

        /// <summary>
        /// Runs one asynchronous C call. When <paramref name="token"/> is cancelled first the call
        /// is cancelled natively (its work aborted: a cancelled lock leaves no lease), objects it
        /// produced anyway are freed, and <see cref="OperationCanceledException"/> is thrown.
        /// </summary>
        internal static async Task<CallResult> CallAsync(Starter start, CancellationToken token)
        {
            token.ThrowIfCancellationRequested();
            var source = new TaskCompletionSource<CallResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            var gcHandle = GCHandle.Alloc(source);
            var userData = new UIntPtr((ulong)GCHandle.ToIntPtr(gcHandle).ToInt64());
            CallResult result;
            using (var cancel = NativeMethods.syros_cancel_new())
            {
                int status;
                try
                {
                    status = start(cancel, Callback, userData);
                }
                catch (ObjectDisposedException)
                {
                    gcHandle.Free();
                    throw SyrosException.Closed();
                }
                catch
                {
                    gcHandle.Free();
                    throw;
                }
                if (status != NativeMethods.Ok)
                {
                    gcHandle.Free();
                    throw new InternalException("the syros library refused the call (status " + status + ")", false, null);
                }
                using (token.Register(() => NativeMethods.syros_cancel_cancel(cancel)))
                {
                    result = await source.Task.ConfigureAwait(false);
                }
            }
            if (token.IsCancellationRequested)
            {
                result.FreeHandles();
                throw new OperationCanceledException(token);
            }
            if (!result.Ok) throw SyrosException.FromJson(result.Json);
            return result;
        }

        internal delegate int SyncCall(out NativeBuffer buffer);

        /// <summary>Runs a synchronous C call and returns its JSON result (or throws its error).</summary>
        internal static byte[] Sync(SyncCall call)
        {
            NativeBuffer buffer;
            int status;
            try
            {
                status = call(out buffer);
            }
            catch (ObjectDisposedException)
            {
                throw SyrosException.Closed();
            }
            var data = new byte[(int)buffer.Len.ToUInt64()];
            if (data.Length > 0) Marshal.Copy(buffer.Data, data, 0, data.Length);
            NativeMethods.syros_buffer_free(buffer);
            if (status != NativeMethods.Ok) throw SyrosException.FromJson(data);
            return data;
        }
    }
}
