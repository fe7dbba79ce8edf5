//! How control crosses the enclave boundary: EENTER reasons (host → enclave)
//! and EEXIT reasons (enclave → host), passed in registers.
//!
//! EENTER: RAX = CSSA, RBX = TCS address, RCX = AEP (as SGX sets them), and
//! RDI = [`EnterReason`], RSI and RDX = reason-specific arguments. Values from
//! the host are hints at most; the LibOS checks each against its own state.
//!
//! EEXIT: RDI = [`ExitReason`], RSI = reason-specific argument.

/// Why the host entered the enclave.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnterReason {
    /// First entry of thread slot 0. RSI = address of the untrusted ring.
    Boot = 1,
    /// First entry of a slot the LibOS asked the host to start (`SpawnThread`).
    ThreadStart = 2,
    /// The OCALL this thread exited for is complete; its result is in the ring.
    OcallReturn = 3,
    /// An exception (AEX) was taken in this slot; SSA frame `CSSA-1` holds
    /// the interrupted context and EXITINFO says what happened.
    Exception = 4,
    /// The host got a signal for the enclave and interrupted program code to
    /// let the LibOS deliver it (SSA frame `CSSA-1` holds the context).
    /// RSI = signal number (a hint: the LibOS checks it against the ring).
    HostSignal = 5,
}

impl EnterReason {
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Boot,
            2 => Self::ThreadStart,
            3 => Self::OcallReturn,
            4 => Self::Exception,
            5 => Self::HostSignal,
            _ => return None,
        })
    }
}

/// Why the enclave exited to the host.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Run the request in this thread's ring slot on this host thread, then
    /// EENTER with [`EnterReason::OcallReturn`].
    Ocall = 1,
    /// The request in this thread's ring slot was posted to the workers and
    /// has not completed: sleep until it is, then EENTER with `OcallReturn`.
    WaitOcall = 2,
    /// This thread is finished; the slot may be reused. RSI unused.
    ExitThread = 3,
    /// The whole program exits. RSI = wait status as Linux encodes it
    /// (exit code << 8, or the terminating signal number).
    ExitProcess = 4,
    /// The LibOS stops because something impossible happened (for example a
    /// hostile OCALL reply). RSI = [`AbortCode`]; a message was written to the
    /// ring's abort buffer.
    Abort = 5,
    /// Return from handling an exception or host signal when the LibOS chose
    /// not to resume in the enclave itself: ERESUME the SSA context.
    Resume = 6,
}

impl ExitReason {
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Ocall,
            2 => Self::WaitOcall,
            3 => Self::ExitThread,
            4 => Self::ExitProcess,
            5 => Self::Abort,
            6 => Self::Resume,
            _ => return None,
        })
    }
}

/// Why the LibOS aborted.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCode {
    /// A bug in the LibOS (panic).
    Panic = 1,
    /// The host returned a result that cannot be true.
    HostileHost = 2,
    /// The LibOS itself executed a system call instruction.
    LibosSyscall = 3,
    /// The LibOS faulted.
    LibosFault = 4,
    /// The measured records or manifest are inconsistent.
    BadImage = 5,
    /// Boot failed for a reason already logged (missing entrypoint, ...).
    BootFailed = 6,
}

impl AbortCode {
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Panic,
            2 => Self::HostileHost,
            3 => Self::LibosSyscall,
            4 => Self::LibosFault,
            5 => Self::BadImage,
            6 => Self::BootFailed,
            _ => return None,
        })
    }
}
