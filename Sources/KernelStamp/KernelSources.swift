/// A digest of the sources of the convolution kernels, dense and sparse (`scripts/kernel-stamp.sh`,
/// run by the BuildStamp plugin): a measurement that timed those kernels holds only for the
/// build it timed, and a build whose kernels differ must measure again. It changes only when
/// those files do, so other commits keep the measurements (and recompile nothing here).
public enum KernelSources {
    /// Hex digest of the kernel source files' names and contents.
    public static let digest = stampedKernelDigest
}
