//! The binaries' allocator: the system allocator, except that a block of 64 MiB or more is
//! reserved lazily (`mmap` with `MAP_NORESERVE`), so that asking for it cannot abort the process.
//!
//! Why: kafka-protocol 0.18 sizes a vector from a request's untrusted array length before it
//! reads a single element, so a 13-byte ListGroups claiming 2^31 state filters asks for 64 GiB.
//! The system allocator refuses that outright and Rust aborts the process: an abort, not a
//! panic, so no guard around the decoder can catch it, and one request from anyone took the
//! whole listener down. Reserved lazily, the block costs no memory; the decoder fails on the
//! bytes that are not there and the block goes back untouched
//! (`tests/tests/kafka.rs::hostile_array_lengths_do_not_abort_the_listener`).
//!
//! glibc already serves blocks this large with one `mmap` each, so legitimate large blocks (a
//! frame of up to 100 MiB, an append of up to 64 MiB) cost what they cost before; only the
//! accounting is lazy, as it is for every allocation under Linux's default overcommit. The
//! threshold sits below the smallest Lambda memory size (128 MB), so no hostile length small
//! enough for the system allocator can exceed the machine. Every smaller allocation keeps the
//! system allocator's behaviour and speed. (A
//! general-purpose replacement, mimalloc, fixed the abort too but cost a third of the Kafka
//! produce throughput: docs/BENCHMARKS.md.) On a host with strict overcommit
//! (`vm.overcommit_memory=2`) the kernel refuses even a lazy reservation: the lasting fix is a
//! decoder that checks lengths against the bytes left.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks this large or larger are reserved lazily.
pub const LAZY_FROM_BYTES: usize = 64 << 20;
/// Alignment an anonymous mapping always has (a page).
const MAPPING_ALIGN: usize = 4096;

pub struct Allocator;

fn lazy(layout: &Layout) -> bool {
    cfg!(unix) && layout.size() >= LAZY_FROM_BYTES && layout.align() <= MAPPING_ALIGN
}

#[cfg(unix)]
unsafe fn reserve(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(unix)]
unsafe fn release(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` and `size` are a mapping `reserve` made (the caller's layout says so).
    unsafe { libc::munmap(ptr.cast(), size) };
}

#[cfg(not(unix))]
unsafe fn reserve(_size: usize) -> *mut u8 {
    std::ptr::null_mut()
}

#[cfg(not(unix))]
unsafe fn release(_ptr: *mut u8, _size: usize) {}

// SAFETY: every block is served and returned by the same mechanism, chosen by its layout
// alone (`lazy`), which is the same at allocation and deallocation; mappings are page-aligned
// and zeroed, which covers every alignment `lazy` accepts and `alloc_zeroed`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            unsafe { reserve(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            unsafe { reserve(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lazy(&layout) {
            unsafe { release(ptr, layout.size()) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (of the layout): the caller guarantees `new_size` is valid for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !lazy(&layout) && !lazy(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Across the threshold, or between two mappings: move the bytes.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_block_is_reserved_without_memory_and_given_back() {
        // 64 GiB: what one hostile array length asked for. Touch a little of it, as a decoder
        // that runs out of bytes would.
        let layout = Layout::from_size_align(64 << 30, 8).expect("layout");
        unsafe {
            let p = Allocator.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(7, 1 << 20);
            assert_eq!(*p.add(12345), 7);
            Allocator.dealloc(p, layout);
        }
    }

    #[test]
    fn blocks_cross_the_threshold_with_their_bytes() {
        let small = Layout::from_size_align(4096, 8).expect("layout");
        unsafe {
            let p = Allocator.alloc(small);
            p.write_bytes(9, 4096);
            let big = Allocator.realloc(p, small, LAZY_FROM_BYTES + 1);
            assert_eq!(*big.add(4095), 9);
            let big_layout = Layout::from_size_align(LAZY_FROM_BYTES + 1, 8).expect("layout");
            let back = Allocator.realloc(big, big_layout, 100);
            assert_eq!(*back.add(99), 9);
            Allocator.dealloc(back, Layout::from_size_align(100, 8).expect("layout"));
        }
    }
}
