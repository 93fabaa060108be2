//! Process-wide settings for the binaries, which must be in place before any worker thread starts,
//! and the one Ctrl-C handler of the process.

/// Tunes the process for candle on the CPU. Measured on a 12-epoch run of the small synthetic
/// project (2 cores): without these settings most of the run was kernel time.
///
/// - candle counts the physical cores on every matmul by parsing `/proc/cpuinfo`, unless
///   `RAYON_NUM_THREADS` is set: it is set once here to the same count.
/// - candle allocates a fresh buffer per op. mimalloc returns freed pages to the OS after a short
///   delay and the next op faults them back in, zeroed by the kernel: purging is turned off (the
///   crate's `no_thp` feature also keeps those pages small).
///
/// # Safety
/// Call first thing in `main`, before any other thread exists: it writes the environment, which
/// other threads could be reading.
#[allow(unsafe_code)]
pub unsafe fn configure() {
    let threads = num_cpus::get_physical().max(1);
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    // OpenBLAS starts one thread per logical CPU when the library loads; matrix products get
    // the physical cores, like candle's other ops.
    #[cfg(feature = "openblas")]
    if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
        candle_core::openblas::set_num_threads(threads);
    }
    // SAFETY: mi_option_set stores an option value; it has no other precondition.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 0);
    }
}

/// `mi_option_purge_delay` of mimalloc v3's `mi_option_e` (mimalloc.h), which the Rust bindings
/// do not name: entry 15, between `mi_option_eager_commit_delay` (14) and
/// `mi_option_use_numa_nodes` (16), which they do.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The process's Ctrl-C, as a cancel token: the handler is installed once, on the first call,
/// and every call hands out the same token. The first Ctrl-C cancels it, so jobs stop at their
/// next step boundary and save what they must; a second one ends the process at once (exit
/// 130), which atomic writes make safe.
pub fn interrupt_token() -> Result<crate::jobs::CancelToken, ctrlc::Error> {
    static TOKEN: std::sync::Mutex<Option<crate::jobs::CancelToken>> = std::sync::Mutex::new(None);
    let mut slot = TOKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(token) = slot.as_ref() {
        return Ok(token.clone());
    }
    let token = crate::jobs::CancelToken::new();
    let handler = token.clone();
    ctrlc::set_handler(move || {
        if handler.is_cancelled() {
            std::process::exit(130);
        }
        handler.cancel();
        eprintln!("\nstopping at the next step; Ctrl-C again quits at once");
    })?;
    *slot = Some(token.clone());
    Ok(token)
}
