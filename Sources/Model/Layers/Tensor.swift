/// A float32 array with a fixed shape, stored contiguously in row-major (C) order.
///
/// `Tensor` is a reference type on purpose: parameters, gradients and momentum buffers are
/// updated in place millions of times per epoch, and a value type would risk a hidden
/// copy-on-write in those loops. Code that wants an independent copy calls `clone()`.
public final class Tensor {
    /// The extent of each dimension, outermost first (PyTorch order: `[out, in, kh, kw]`).
    public let shape: [Int]
    /// The number of elements, the product of `shape`.
    public let count: Int
    /// The first element; valid for `count` elements until the tensor is released.
    public let pointer: UnsafeMutablePointer<Float>

    /// A tensor of the given shape with every element set to `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.pointer = .allocateCacheAligned(Swift.max(count, 1))
        pointer.initialize(repeating: value, count: Swift.max(count, 1))
    }

    /// A tensor holding `values`, which must have exactly `shape`'s element count.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "Tensor(shape: \(shape)) needs \(count) values, got \(values.count)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    deinit { pointer.deallocateCacheAligned() }

    /// The elements as a mutable buffer, for loops that want bounds-free access.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// The elements copied into an array (tests and serialisation, never hot loops).
    public var array: [Float] { Array(buffer) }

    /// Element `index` of the flattened tensor.
    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }

    /// Overwrites every element with the matching element of `other` (same element count).
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy from \(other.shape) into \(shape)")
        pointer.update(from: other.pointer, count: count)
    }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    /// An independent copy.
    public func clone() -> Tensor {
        let copy = Tensor(shape: shape)
        copy.copy(from: self)
        return copy
    }
}

/// A growable scratch buffer of floats, reused across steps so the training loop allocates
/// nothing after its first batch.
public final class Workspace {
    /// The first element; valid for `capacity` elements.
    public private(set) var pointer: UnsafeMutablePointer<Float>
    /// How many elements the buffer holds.
    public private(set) var capacity: Int

    /// An empty workspace; the first `reserve` allocates.
    public init() {
        pointer = .allocateCacheAligned(1)
        capacity = 0
    }

    deinit { pointer.deallocateCacheAligned() }

    /// Makes room for `count` elements and returns the start; old contents are not kept.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocateCacheAligned()
            pointer = .allocateCacheAligned(count)
            capacity = count
        }
        return pointer
    }
}

extension UnsafeMutablePointer<Float> {
    /// Room for `count` floats starting on a 64-byte cache line. The vector kernels read 16
    /// floats (64 bytes) at offsets that are multiples of 16 floats from a buffer's start; at
    /// malloc's 16-byte alignment every one of those loads straddled two cache lines.
    fileprivate static func allocateCacheAligned(_ count: Int) -> Self {
        UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
    }

    /// Frees what `allocateCacheAligned` returned.
    fileprivate func deallocateCacheAligned() { UnsafeMutableRawPointer(self).deallocate() }
}
