//! The trie's nodes and leaves: one copy, shared by every snapshot.
//!
//! Each array lives in a region of address space reserved once (an
//! anonymous `MAP_NORESERVE` mapping), so it never moves while readers walk
//! it and costs memory only where it has been written. Readers index it
//! like a slice; the writer writes elements through `Region::write`.
//!
//! What makes that sound is the copy-on-write discipline of the builder
//! (`build.rs`): it writes only into blocks that no snapshot a reader can
//! hold reaches, namely blocks allocated since the last publish (nothing
//! published points into them yet). A block it replaces is reused only
//! after the next publish, once no reader holds the snapshot before it, and
//! later still while a snapshot abandoned to a slow reader may reach it
//! (`BlockAlloc::reclaim`). A published snapshot's nodes and leaves are
//! therefore never written while it can be read.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::trie::Node;

/// Trie nodes a FIB's store has room for: 1 GiB of address space. A
/// 100k-prefix Internet table has about 30,000; the FIB refuses new routes
/// once a quarter of the room is in use (`Fib::insert`), since the copies a
/// batch makes and the blocks waiting for readers can need the rest.
pub(crate) const MAX_NODES: usize = 1 << 23;
/// Leaf runs a FIB's store has room for (256 MiB of address space).
pub(crate) const MAX_LEAVES: usize = 1 << 26;

/// A fixed-capacity array at a stable address whose elements start zeroed.
pub(crate) struct Region<T> {
    ptr: NonNull<UnsafeCell<T>>,
    cap: usize,
    /// Elements handed out so far (the high-water mark), for memory figures:
    /// on a cache line of its own, away from `ptr` and `cap`, which every
    /// lookup reads (the writer's stores would otherwise evict them).
    used: Padded,
}

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicUsize);

/// A [`Region`]'s elements for reading, bounds-checked like the region.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    cells: &'a [UnsafeCell<T>],
}

impl<'a, T> View<'a, T> {
    /// Element `i`. Panics if `i` is beyond the reservation.
    #[inline(always)]
    pub fn get(self, i: u32) -> &'a T {
        let cell = &self.cells[i as usize];
        // SAFETY: as in `Region::get`.
        unsafe { &*cell.get() }
    }

    /// Where element `i` would be, for a prefetch hint only (never
    /// dereferenced): an index beyond the reservation gives an address
    /// outside it, which a prefetch ignores.
    #[inline(always)]
    pub fn addr_of(self, i: u32) -> *const T {
        self.cells.as_ptr().wrapping_add(i as usize).cast::<T>()
    }
}

// SAFETY: a `Region` is a block of plain data; concurrent access follows
// the copy-on-write discipline described in the module documentation:
// readers read elements no one writes, the single writer writes elements no
// reader reaches.
unsafe impl<T: Send> Send for Region<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Region<T> {}

impl<T: Copy> Region<T> {
    /// Reserves room for `cap` elements. `T` must be valid all-zero (fresh
    /// anonymous pages are zero). Fails if the kernel refuses the address
    /// space (a limit on it, or strict overcommit accounting).
    fn reserve(cap: usize) -> std::io::Result<Self> {
        let bytes = cap
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "more than memory holds")
            })?;
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Region {
            ptr: NonNull::new(p.cast()).unwrap_or(NonNull::dangling()),
            cap,
            used: Padded::default(),
        })
    }

    #[inline(always)]
    fn cells(&self) -> &[UnsafeCell<T>] {
        // SAFETY: the mapping holds `cap` elements for the region's life;
        // `UnsafeCell` allows the writer's writes beside readers' shared
        // references to other elements.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    /// Element `i`. Panics if `i` is beyond the reservation (never for
    /// indices the builder wrote).
    #[inline(always)]
    pub fn get(&self, i: u32) -> &T {
        let cell = &self.cells()[i as usize];
        // SAFETY: no one writes an element a reader can reach (module
        // documentation), so this shared reference sees no concurrent write.
        unsafe { &*cell.get() }
    }

    /// The region as a plain slice-like view for a run of reads: its
    /// pointer and length sit in the caller's registers instead of being
    /// loaded again from the region after every store the caller makes.
    #[inline(always)]
    pub fn view(&self) -> View<'_, T> {
        View {
            cells: self.cells(),
        }
    }

    /// Elements `off .. off + len`.
    pub fn slice(&self, off: u32, len: usize) -> &[T] {
        let cells = &self.cells()[off as usize..off as usize + len];
        // SAFETY: `UnsafeCell<T>` has `T`'s layout; as in `get`, no one
        // writes these elements while they can be read.
        unsafe { std::slice::from_raw_parts(cells.as_ptr().cast::<T>(), len) }
    }

    /// Writes `vs` at `off`.
    ///
    /// # Safety
    /// Only the builder writes (it holds the FIB mutably), and only into
    /// blocks no reader reaches: the module's discipline, checked in debug
    /// builds by `BlockAlloc::check_fresh`.
    #[inline]
    pub unsafe fn write(&self, off: u32, vs: &[T]) {
        let cells = &self.cells()[off as usize..off as usize + vs.len()];
        for (cell, &v) in cells.iter().zip(vs) {
            // SAFETY: the caller's contract: nothing reads this element.
            unsafe { *cell.get() = v };
        }
    }

    /// Copies `count` elements from `from` to `to` (the ranges may
    /// overlap).
    ///
    /// # Safety
    /// As for `write`, for the elements at `to`.
    pub unsafe fn copy(&self, from: u32, to: u32, count: usize) {
        let cells = self.cells();
        let src = cells[from as usize..from as usize + count].as_ptr();
        let dst = cells[to as usize..to as usize + count].as_ptr();
        // SAFETY: both ranges lie in the mapping (the slicing checked it);
        // the caller's contract: nothing reads the elements at `to`, and
        // the ones at `from` are not written meanwhile (one writer).
        unsafe { std::ptr::copy(UnsafeCell::raw_get(src), UnsafeCell::raw_get(dst), count) };
    }

    /// Panics if `top` elements do not fit (the FIB refuses routes long
    /// before: see `Store::has_room`); records the high-water mark.
    pub fn grow_to(&self, top: u32) {
        let top = top as usize;
        assert!(
            top <= self.cap,
            "FIB arena full: {top} of {} elements",
            self.cap
        );
        // One writer: a plain load and store, no read-modify-write (a
        // locked instruction per allocation showed in the update profile).
        if top > self.used.0.load(Ordering::Relaxed) {
            self.used.0.store(top, Ordering::Relaxed);
        }
    }

    /// Lowers the high-water mark to `top` elements and gives the pages
    /// wholly above it back to the kernel (they read as zero if written
    /// again).
    ///
    /// # Safety
    /// No block at or above `top` may be reachable by any snapshot or in
    /// use by the builder: the allocator has no block there any more
    /// (`BlockAlloc::trim`).
    pub unsafe fn shrink_to(&self, top: u32) {
        let sz = std::mem::size_of::<T>();
        let old = self.used.0.load(Ordering::Relaxed);
        let top = top as usize;
        if top >= old {
            return;
        }
        self.used.0.store(top, Ordering::Relaxed);
        let from = (top * sz).next_multiple_of(4096);
        let to = (old * sz).next_multiple_of(4096);
        if to > from {
            // SAFETY: `from..to` lies inside the mapping (`old <= cap`) and
            // holds no element anyone reads (the caller's contract);
            // MADV_DONTNEED on a private anonymous mapping only drops pages.
            let r = unsafe {
                libc::madvise(
                    self.ptr.as_ptr().cast::<u8>().add(from).cast(),
                    to - from,
                    libc::MADV_DONTNEED,
                )
            };
            debug_assert_eq!(r, 0, "madvise: {}", std::io::Error::last_os_error());
        }
    }

    /// Bytes written so far, rounded up to whole pages: what the region
    /// occupies in memory.
    pub fn bytes(&self) -> usize {
        (self.used.0.load(Ordering::Relaxed) * std::mem::size_of::<T>()).next_multiple_of(4096)
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `reserve` with this size and
        // nothing refers to it any more (the region is being dropped, and
        // every snapshot holds the store through an `Arc`).
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.cap * std::mem::size_of::<T>(),
            );
        }
    }
}

impl<T> std::fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("cap", &self.cap)
            .field("used", &self.used.0.load(Ordering::Relaxed))
            .finish()
    }
}

/// The nodes and leaves of every snapshot of one FIB.
#[derive(Debug)]
pub(crate) struct Store {
    pub nodes: Region<Node>,
    pub leaves: Region<u32>,
}

impl Store {
    /// Room for `nodes` trie nodes and `leaves` leaf runs; fails if the
    /// address space is refused.
    pub fn with_capacity(nodes: usize, leaves: usize) -> std::io::Result<Self> {
        // Node indices are 29 bits in the direct table and root pages, leaf
        // indices 32 bits in a chunk.
        if nodes > crate::trie::VALUE_MASK as usize || leaves > u32::MAX as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "more nodes or leaf runs than an index holds",
            ));
        }
        Ok(Store {
            nodes: Region::reserve(nodes)?,
            leaves: Region::reserve(leaves)?,
        })
    }

    /// The nodes and leaf runs it has room for.
    pub fn capacity(&self) -> (usize, usize) {
        (self.nodes.cap, self.leaves.cap)
    }

    /// Whether `nodes` nodes and `leaves` leaf runs in use leave the
    /// three quarters of the room that copy-on-write may need.
    pub fn has_room(&self, nodes: usize, leaves: usize) -> bool {
        nodes <= self.nodes.cap / 4 && leaves <= self.leaves.cap / 4
    }

    pub fn bytes(&self) -> usize {
        self.nodes.bytes() + self.leaves.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `r`'s first `pages` pages the kernel holds in memory.
    fn resident(r: &Region<u32>, pages: usize) -> usize {
        let mut vec = vec![0u8; pages];
        // SAFETY: the range lies in the region's mapping; mincore writes
        // one byte per page into `vec`, which has room for them.
        let rc = unsafe { libc::mincore(r.ptr.as_ptr().cast(), pages * 4096, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn shrinking_gives_whole_pages_above_the_mark_back() {
        let r: Region<u32> = Region::reserve(1 << 20).unwrap();
        let per_page = 1024u32;
        r.grow_to(16 * per_page);
        for page in 0..16 {
            // SAFETY: nothing reads the region in this test.
            unsafe { r.write(page * per_page, &[page + 1]) };
        }
        assert_eq!(resident(&r, 16), 16);
        assert_eq!(r.bytes(), 16 * 4096);
        // A mark inside page 5: pages 0..=5 stay, 6..16 go.
        // SAFETY: no block lies above the mark.
        unsafe { r.shrink_to(5 * per_page + 1) };
        assert_eq!(r.bytes(), 6 * 4096);
        assert_eq!(resident(&r, 16), 6, "pages above the mark still in memory");
        assert_eq!(
            *r.get(5 * per_page),
            6,
            "the page holding the mark was dropped"
        );
        assert_eq!(*r.get(6 * per_page), 0, "a given-back page reads as zero");
        // Shrinking never grows.
        // SAFETY: as above.
        unsafe { r.shrink_to(9 * per_page) };
        assert_eq!(r.bytes(), 6 * 4096);
    }
}
