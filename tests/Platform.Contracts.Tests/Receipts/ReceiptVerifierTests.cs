using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Messages;
using Platform.Contracts.Receipts;
using Platform.Contracts.Signing;
using Xunit.Abstractions;

namespace Platform.Contracts.Tests.Receipts;

public sealed class ReceiptVerifierTests(ITestOutputHelper output)
{
    private const int Seed = 9061;

    /// <summary>A key fixed by the seed and its name, signing deterministically: the same bytes every run.</summary>
    private static DeterministicEcdsa Key(string name) => DeterministicEcdsa.FromSeed($"receipt-verifier-tests {Seed} {name}");

    /// <summary>
    /// A two-replica receipt signed by a platform key and two worker keys, all from a fixed seed: the keys, the data and
    /// the signatures are the same bytes on every run (<see cref="The_fixture_is_the_same_file_on_every_run"/>).
    /// </summary>
    private sealed class Fixture : IDisposable
    {
        public ECDsa Platform { get; } = Key("platform");
        public ECDsa[] Workers { get; } = [Key("worker 0"), Key("worker 1")];
        public JobReceipt Receipt { get; }

        public Fixture(Func<IReadOnlyDictionary<string, Cid>, IReadOnlyDictionary<string, Cid>>? signedOutputs = null)
        {
            var random = new Random(Seed);
            var job = JobId.From("job_" + Hex(random, 13));
            var outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute(Bytes(random, 64)) };
            var attempts = Workers.Select((key, i) =>
            {
                var attempt = AttemptId.From("att_" + Hex(random, 13));
                return ReceiptAttempt.From(attempt.Value, "wrk_" + Hex(random, 13), ResultSignature.ExportPublicKey(key),
                    ResultSignature.Sign(key, job, attempt, signedOutputs?.Invoke(outputs) ?? outputs), spotCheck: false,
                    new AttemptMetrics { DurationMs = 12.5 + i, Gflop = 0.000128, Device = "cpu", Joules = 0.37 + i / 10.0, JoulesEstimated = true });
            }).ToList();
            Receipt = new JobReceipt
            {
                Format = JobReceipt.FormatV1,
                IssuedAt = new DateTimeOffset(2025, 3, 1, 12, 0, 0, 123, TimeSpan.Zero),
                JobId = job.Value,
                ClientAccountId = "acc_" + Hex(random, 13),
                Kernel = "vector-add",
                KernelVersion = "1",
                Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute(Bytes(random, 64)), ["b"] = Cid.Compute(Bytes(random, 64)) },
                Params = new Dictionary<string, string>(),
                Replicas = 2,
                Requirements = new ReceiptRequirements { Device = "any", MinMemoryMb = 0, Region = null },
                MaxPrice = 5m,
                Status = "completed",
                CreatedAt = new DateTimeOffset(2025, 3, 1, 11, 59, 58, TimeSpan.Zero),
                CompletedAt = new DateTimeOffset(2025, 3, 1, 11, 59, 59, 500, TimeSpan.Zero),
                Outputs = outputs,
                Attempts = attempts,
                Energy = ReceiptEnergy.Of(attempts),
                Cost = 0.002560m,
            };
        }

        public byte[] File(JobReceipt? receipt = null) => ReceiptJson.Serialize(ReceiptJson.Sign(receipt ?? Receipt, Platform));

        public string PlatformKey => ResultSignature.ExportPublicKey(Platform);

        public void Dispose()
        {
            Platform.Dispose();
            foreach (var w in Workers)
                w.Dispose();
        }

        private static string Hex(Random random, int n) => string.Concat(Enumerable.Range(0, n).Select(_ => "abcdefghijklmnopqrstuvwxyz234567"[random.Next(32)]));

        private static byte[] Bytes(Random random, int n)
        {
            var bytes = new byte[n];
            random.NextBytes(bytes);
            return bytes;
        }
    }

    [Fact]
    public void A_good_receipt_verifies_with_the_key_in_it_and_with_the_pinned_key()
    {
        using var f = new Fixture();
        var file = f.File();

        var unpinned = ReceiptVerifier.Verify(file);
        var pinned = ReceiptVerifier.Verify(file, f.PlatformKey, new Dictionary<string, Cid> { ["c"] = f.Receipt.Outputs["c"] });

        Assert.True(unpinned.Verified, string.Join("\n", unpinned.Failures));
        Assert.Contains(unpinned.Checks, c => c.Name == "platform signature" && c.Detail.Contains("as named in the receipt", StringComparison.Ordinal));
        Assert.True(pinned.Verified, string.Join("\n", pinned.Failures));
        Assert.Contains(pinned.Checks, c => c.Name == "platform signature" && c.Detail.Contains("pinned", StringComparison.Ordinal));
        Assert.Equal(2, pinned.Checks.Count(c => c.Name.StartsWith("worker ", StringComparison.Ordinal) && c.Passed));
    }

    [Fact]
    public void The_file_is_indented_json_with_lf_line_ends_and_one_trailing_newline()
    {
        using var f = new Fixture();
        var text = Encoding.UTF8.GetString(f.File());

        Assert.StartsWith("{\n  \"receipt\": {\n    \"format\": \"platform-receipt-v1\",\n", text, StringComparison.Ordinal);
        Assert.EndsWith("\"\n}\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\r", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every byte position of a real receipt, each changed to three other values (a low bit, the case bit, and a
    /// character that keeps JSON valid in many places: a tab for a space, a space for a line end, 'A' elsewhere):
    /// not one of the changed files verifies.
    /// </summary>
    [Fact]
    public void Changing_any_byte_of_a_receipt_makes_it_fail()
    {
        output.WriteLine($"seed {Seed}");
        using var f = new Fixture();
        var file = f.File();
        Assert.True(ReceiptVerifier.Verify(file).Verified);
        var passed = new List<string>();
        var tried = 0;
        for (var i = 0; i < file.Length; i++)
        {
            var original = file[i];
            var replacements = new[] { (byte)(original ^ 0x01), (byte)(original ^ 0x20), original switch { (byte)' ' => (byte)'\t', (byte)'\n' => (byte)' ', _ => (byte)'A' } };
            foreach (var replacement in replacements.Distinct().Where(r => r != original))
            {
                var changed = (byte[])file.Clone();
                changed[i] = replacement;
                tried++;
                if (ReceiptVerifier.Verify(changed).Verified)
                    passed.Add($"byte {i} ('{(char)original}') -> '{(char)replacement}'");
            }
        }
        output.WriteLine($"{tried} changed files of {file.Length} bytes, {passed.Count} verified");
        Assert.Empty(passed);
    }

    [Fact]
    public void Appending_or_removing_a_byte_fails()
    {
        using var f = new Fixture();
        var file = f.File();

        Assert.False(ReceiptVerifier.Verify([.. file, (byte)'\n']).Verified);
        Assert.False(ReceiptVerifier.Verify(file.AsSpan(0, file.Length - 1)).Verified);
        Assert.False(ReceiptVerifier.Verify([0xEF, 0xBB, 0xBF, .. file]).Verified);
        var crlf = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(file).Replace("\n", "\r\n", StringComparison.Ordinal));
        var result = ReceiptVerifier.Verify(crlf);
        Assert.False(result.Verified);
        Assert.Contains(result.Failures, c => c.Name == "canonical" && c.Detail.StartsWith("not in canonical form: the receipt was changed", StringComparison.Ordinal));
    }

    [Fact]
    public void The_fixture_is_the_same_file_on_every_run()
    {
        output.WriteLine($"seed {Seed}");
        using var f = new Fixture();
        using var again = new Fixture();
        var file = f.File();

        Assert.Equal(file, again.File());
        var hash = Convert.ToHexStringLower(SHA256.HashData(file));
        output.WriteLine($"fixture file sha256 {hash}");
        // Pinned: a change here means the fixture's keys, data or signatures are no longer fixed (or the receipt format changed).
        Assert.Equal(FixtureFileSha256, hash);
    }

    private const string FixtureFileSha256 = "c8c2d093f1ed5be53b9ddffcc4e295411284827fda434e856d39250a4234b3d0";

    /// <summary>
    /// A DER ECDSA signature is 69 to 72 bytes; its base64 has spare bits only when it ends in padding: 70 bytes
    /// ("==", 4 spare bits) or 71 ("=", 2). Receipts signed by sixteen fixed keys (deterministic signatures, so the same
    /// lengths every run) cover both; every spare bit of each padded one is set in turn, and each such file fails.
    /// </summary>
    [Fact]
    public void A_base64_signature_with_non_zero_padding_bits_fails_though_it_decodes_to_the_same_bytes()
    {
        const string Base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        using var f = new Fixture();
        var lengths = new List<int>();
        var altered = 0;
        for (var i = 0; i < 16; i++)
        {
            using var key = Key($"padding {i}");
            var signed = ReceiptJson.Sign(f.Receipt, key);
            var signature = signed.PlatformSignature;
            lengths.Add(Convert.FromBase64String(signature).Length);
            Assert.True(ReceiptVerifier.Verify(ReceiptJson.Serialize(signed)).Verified, $"key {i}: the untouched receipt fails");
            var padding = signature.Length - signature.TrimEnd('=').Length;
            var last = signature.Length - padding - 1;
            for (var bit = 0; bit < 2 * padding; bit++)
            {
                var sibling = Base64[Base64.IndexOf(signature[last], StringComparison.Ordinal) ^ (1 << bit)];
                var changed = signature[..last] + sibling + signature[(last + 1)..];
                Assert.Equal(Convert.FromBase64String(signature), Convert.FromBase64String(changed));

                var result = ReceiptVerifier.Verify(ReceiptJson.Serialize(signed with { PlatformSignature = changed }));

                Assert.False(result.Verified, $"key {i}: {changed} verified");
                Assert.Contains(result.Failures, c => c.Name == "platform signature" && c.Detail.Contains("not canonical", StringComparison.Ordinal));
                altered++;
            }
        }
        output.WriteLine($"signature lengths {string.Join(", ", lengths)}; {altered} altered signatures");
        Assert.Contains(70, lengths);
        Assert.Contains(71, lengths);
        Assert.Contains(72, lengths); // no padding, no spare bits: nothing to alter, and it verifies
    }

    [Fact]
    public void A_forged_worker_signature_fails_though_the_platform_signed_the_receipt()
    {
        using var f = new Fixture();
        using var forger = Key("forger");
        var attempt = f.Receipt.Attempts[1];
        var forged = f.Receipt with
        {
            Attempts = [f.Receipt.Attempts[0], attempt with { Signature = ResultSignature.Sign(forger, JobId.From(f.Receipt.JobId), AttemptId.From(attempt.AttemptId), f.Receipt.Outputs) }],
        };

        var result = ReceiptVerifier.Verify(f.File(forged), f.PlatformKey);

        Assert.False(result.Verified);
        var failure = Assert.Single(result.Failures);
        Assert.Equal($"worker {attempt.WorkerId}", failure.Name);
    }

    [Fact]
    public void A_swapped_output_cid_fails_every_worker_signature()
    {
        using var f = new Fixture();
        var swapped = f.Receipt with { Outputs = new Dictionary<string, Cid> { ["c"] = f.Receipt.Inputs["a"] } };

        var result = ReceiptVerifier.Verify(f.File(swapped), f.PlatformKey);

        Assert.False(result.Verified);
        Assert.Equal(2, result.Failures.Count(c => c.Name.StartsWith("worker ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Workers_that_signed_other_outputs_fail()
    {
        using var f = new Fixture(outputs => new Dictionary<string, Cid> { ["c"] = Cid.Compute("something else"u8) });

        Assert.False(ReceiptVerifier.Verify(f.File(), f.PlatformKey).Verified);
    }

    [Fact]
    public void A_receipt_signed_by_another_platform_key_fails_against_the_pinned_key()
    {
        using var f = new Fixture();
        using var impostor = Key("impostor");
        var file = ReceiptJson.Serialize(ReceiptJson.Sign(f.Receipt, impostor));

        // Self-consistent, so it verifies against the key it names; the pinned key is what exposes it.
        Assert.True(ReceiptVerifier.Verify(file).Verified);
        var result = ReceiptVerifier.Verify(file, f.PlatformKey);

        Assert.False(result.Verified);
        Assert.Contains(result.Failures, c => c.Name == "platform key");
    }

    [Fact]
    public void Totals_that_do_not_add_up_and_too_few_replicas_fail()
    {
        using var f = new Fixture();
        var inflated = f.Receipt with { Energy = f.Receipt.Energy with { Joules = f.Receipt.Energy.Joules! + 1 } };
        var short1 = f.Receipt with { Replicas = 3 };

        Assert.Contains(ReceiptVerifier.Verify(f.File(inflated)).Failures, c => c.Name == "totals");
        Assert.Contains(ReceiptVerifier.Verify(f.File(short1)).Failures, c => c.Name == "replicas");
    }

    [Fact]
    public void A_local_output_file_that_differs_fails()
    {
        using var f = new Fixture();

        var result = ReceiptVerifier.Verify(f.File(), f.PlatformKey, new Dictionary<string, Cid> { ["c"] = Cid.Compute("not the output"u8) });

        Assert.False(result.Verified);
        Assert.Equal("output c", Assert.Single(result.Failures).Name);
    }

    [Fact]
    public void Something_that_is_not_a_receipt_fails_with_one_line()
    {
        var result = ReceiptVerifier.Verify("{\"hello\": 1}\n"u8);

        Assert.False(result.Verified);
        Assert.StartsWith("not a platform receipt", Assert.Single(result.Checks).Detail, StringComparison.Ordinal);
    }
}
