using System.Runtime.InteropServices;

namespace Platform.Worker.Compute.OpenCl;

/// <summary>
/// The few OpenCL 1.2 entry points the backend needs. Handles are nint and size_t is nuint; cl_bitfield types
/// (device type, mem flags, map flags, queue properties) are 64-bit. Every import names
/// <see cref="Library"/>, which a resolver maps to the library <see cref="TryLoad"/> opened, so a missing
/// OpenCL is a false return there rather than a DllNotFoundException at first call.
/// </summary>
internal static unsafe partial class OpenClNative
{
    public const string Library = "libOpenCL.so.1";

    public const int Success = 0;

    public const ulong DeviceTypeCpu = 1 << 1;
    public const ulong DeviceTypeGpu = 1 << 2;
    public const ulong DeviceTypeAccelerator = 1 << 3;
    public const ulong DeviceTypeAll = 0xFFFFFFFF;

    public const uint PlatformName = 0x0902;
    public const uint DeviceType = 0x1000;
    public const uint DeviceMaxMemAllocSize = 0x1010;
    public const uint DeviceGlobalMemSize = 0x101F;
    public const uint DeviceName = 0x102B;
    public const uint DeviceSingleFpConfig = 0x101B;
    public const ulong FpDenorm = 1 << 0;
    public const ulong FpCorrectlyRoundedDivideSqrt = 1 << 7;
    public const uint ProgramBuildLog = 0x1183;

    public const ulong MemReadWrite = 1 << 0;
    public const ulong MemReadOnly = 1 << 2;
    public const ulong MemUseHostPtr = 1 << 3;
    public const ulong MapRead = 1 << 0;

    private static readonly Lock s_loadGate = new();
    private static nint s_library;
    private static string? s_libraryName;
    private static bool s_resolverSet;

    /// <summary>Opens the OpenCL loader once per process; false when it is not installed.</summary>
    public static bool TryLoad(string libraryName)
    {
        lock (s_loadGate)
        {
            if (s_library != 0 && libraryName == s_libraryName)
                return true;
            if (!NativeLibrary.TryLoad(libraryName, out var handle))
                return false;
            if (s_library != 0)
            {
                // The imports are bound to the first loader for the life of the process; a second name (tests
                // do this) can only be checked for presence, and the loaded one keeps serving.
                NativeLibrary.Free(handle);
                return true;
            }
            s_library = handle;
            s_libraryName = libraryName;
            if (!s_resolverSet)
            {
                // One resolver per assembly is allowed; it only answers for the OpenCL imports.
                NativeLibrary.SetDllImportResolver(typeof(OpenClNative).Assembly,
                    (name, _, _) => name == Library ? s_library : 0);
                s_resolverSet = true;
            }
            return true;
        }
    }

    /// <summary>
    /// Sets a variable in the native environment, which the OpenCL driver reads with getenv
    /// (Environment.SetEnvironmentVariable only changes the runtime's managed copy on Unix).
    /// </summary>
    public static void SetNativeEnvironment(string name, string value)
    {
        if (OperatingSystem.IsLinux())
            _ = setenv(name, value, 1);
    }

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    public static void Check(int error, string call)
    {
        if (error != Success)
            throw new InvalidOperationException($"{call} failed: {ErrorName(error)} ({error})");
    }

    public static string ErrorName(int error) => error switch
    {
        0 => "CL_SUCCESS",
        -1 => "CL_DEVICE_NOT_FOUND",
        -2 => "CL_DEVICE_NOT_AVAILABLE",
        -3 => "CL_COMPILER_NOT_AVAILABLE",
        -4 => "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5 => "CL_OUT_OF_RESOURCES",
        -6 => "CL_OUT_OF_HOST_MEMORY",
        -7 => "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8 => "CL_MEM_COPY_OVERLAP",
        -9 => "CL_IMAGE_FORMAT_MISMATCH",
        -10 => "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11 => "CL_BUILD_PROGRAM_FAILURE",
        -12 => "CL_MAP_FAILURE",
        -13 => "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14 => "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15 => "CL_COMPILE_PROGRAM_FAILURE",
        -16 => "CL_LINKER_NOT_AVAILABLE",
        -17 => "CL_LINK_PROGRAM_FAILURE",
        -18 => "CL_DEVICE_PARTITION_FAILED",
        -19 => "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30 => "CL_INVALID_VALUE",
        -31 => "CL_INVALID_DEVICE_TYPE",
        -32 => "CL_INVALID_PLATFORM",
        -33 => "CL_INVALID_DEVICE",
        -34 => "CL_INVALID_CONTEXT",
        -35 => "CL_INVALID_QUEUE_PROPERTIES",
        -36 => "CL_INVALID_COMMAND_QUEUE",
        -37 => "CL_INVALID_HOST_PTR",
        -38 => "CL_INVALID_MEM_OBJECT",
        -39 => "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40 => "CL_INVALID_IMAGE_SIZE",
        -41 => "CL_INVALID_SAMPLER",
        -42 => "CL_INVALID_BINARY",
        -43 => "CL_INVALID_BUILD_OPTIONS",
        -44 => "CL_INVALID_PROGRAM",
        -45 => "CL_INVALID_PROGRAM_EXECUTABLE",
        -46 => "CL_INVALID_KERNEL_NAME",
        -47 => "CL_INVALID_KERNEL_DEFINITION",
        -48 => "CL_INVALID_KERNEL",
        -49 => "CL_INVALID_ARG_INDEX",
        -50 => "CL_INVALID_ARG_VALUE",
        -51 => "CL_INVALID_ARG_SIZE",
        -52 => "CL_INVALID_KERNEL_ARGS",
        -53 => "CL_INVALID_WORK_DIMENSION",
        -54 => "CL_INVALID_WORK_GROUP_SIZE",
        -55 => "CL_INVALID_WORK_ITEM_SIZE",
        -56 => "CL_INVALID_GLOBAL_OFFSET",
        -57 => "CL_INVALID_EVENT_WAIT_LIST",
        -58 => "CL_INVALID_EVENT",
        -59 => "CL_INVALID_OPERATION",
        -60 => "CL_INVALID_GL_OBJECT",
        -61 => "CL_INVALID_BUFFER_SIZE",
        -62 => "CL_INVALID_MIP_LEVEL",
        -63 => "CL_INVALID_GLOBAL_WORK_SIZE",
        -64 => "CL_INVALID_PROPERTY",
        -65 => "CL_INVALID_IMAGE_DESCRIPTOR",
        -66 => "CL_INVALID_COMPILER_OPTIONS",
        -67 => "CL_INVALID_LINKER_OPTIONS",
        -68 => "CL_INVALID_DEVICE_PARTITION_COUNT",
        -69 => "CL_INVALID_PIPE_SIZE",
        -70 => "CL_INVALID_DEVICE_QUEUE",
        -71 => "CL_INVALID_SPEC_ID",
        -72 => "CL_MAX_SIZE_RESTRICTION_EXCEEDED",
        -1001 => "CL_PLATFORM_NOT_FOUND_KHR",
        _ => "unknown OpenCL error",
    };

    [LibraryImport(Library)]
    public static partial int clGetPlatformIDs(uint numEntries, nint* platforms, uint* numPlatforms);

    [LibraryImport(Library)]
    public static partial int clGetPlatformInfo(nint platform, uint paramName, nuint valueSize, void* value, nuint* valueSizeRet);

    [LibraryImport(Library)]
    public static partial int clGetDeviceIDs(nint platform, ulong deviceType, uint numEntries, nint* devices, uint* numDevices);

    [LibraryImport(Library)]
    public static partial int clGetDeviceInfo(nint device, uint paramName, nuint valueSize, void* value, nuint* valueSizeRet);

    [LibraryImport(Library)]
    public static partial nint clCreateContext(nint* properties, uint numDevices, nint* devices, nint notify, nint userData, int* error);

    // The 1.2 entry point rather than clCreateCommandQueueWithProperties, so 1.2-only drivers work too.
    [LibraryImport(Library)]
    public static partial nint clCreateCommandQueue(nint context, nint device, ulong properties, int* error);

    [LibraryImport(Library)]
    public static partial nint clCreateProgramWithSource(nint context, uint count, byte** strings, nuint* lengths, int* error);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int clBuildProgram(nint program, uint numDevices, nint* devices, string? options, nint notify, nint userData);

    [LibraryImport(Library)]
    public static partial int clGetProgramBuildInfo(nint program, nint device, uint paramName, nuint valueSize, void* value, nuint* valueSizeRet);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint clCreateKernel(nint program, string name, int* error);

    [LibraryImport(Library)]
    public static partial int clSetKernelArg(nint kernel, uint index, nuint size, void* value);

    [LibraryImport(Library)]
    public static partial nint clCreateBuffer(nint context, ulong flags, nuint size, void* hostPtr, int* error);

    [LibraryImport(Library)]
    public static partial int clEnqueueNDRangeKernel(nint queue, nint kernel, uint workDim, nuint* globalOffset, nuint* globalSize,
        nuint* localSize, uint numEvents, nint* waitList, nint* @event);

    [LibraryImport(Library)]
    public static partial int clEnqueueReadBufferRect(nint queue, nint buffer, uint blocking, nuint* bufferOrigin, nuint* hostOrigin,
        nuint* region, nuint bufferRowPitch, nuint bufferSlicePitch, nuint hostRowPitch, nuint hostSlicePitch, void* ptr,
        uint numEvents, nint* waitList, nint* @event);

    [LibraryImport(Library)]
    public static partial void* clEnqueueMapBuffer(nint queue, nint buffer, uint blocking, ulong mapFlags, nuint offset, nuint size,
        uint numEvents, nint* waitList, nint* @event, int* error);

    [LibraryImport(Library)]
    public static partial int clEnqueueUnmapMemObject(nint queue, nint memObject, void* mappedPtr, uint numEvents, nint* waitList, nint* @event);

    [LibraryImport(Library)]
    public static partial int clFinish(nint queue);

    [LibraryImport(Library)]
    public static partial int clReleaseMemObject(nint memObject);

    [LibraryImport(Library)]
    public static partial int clReleaseKernel(nint kernel);

    [LibraryImport(Library)]
    public static partial int clReleaseProgram(nint program);

    [LibraryImport(Library)]
    public static partial int clReleaseCommandQueue(nint queue);

    [LibraryImport(Library)]
    public static partial int clReleaseContext(nint context);
}
