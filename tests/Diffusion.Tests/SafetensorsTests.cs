using System.Buffers.Binary;
using System.Text.Json;
using Diffusion.Config;
using Diffusion.IO;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// safetensors through TorchSharp.PyBridge: the reader against a file written by an independent NumPy writer
/// (tests/tools/safetensors_fixture.py, from the format's specification; regenerate with
///   /usr/bin/python3 tests/tools/safetensors_fixture.py
/// — the script is not needed to run these tests), <c>diffusion export</c>'s round trip, and <c>train --init-weights</c>.
/// </summary>
public class SafetensorsTests
{
    private static string Fixture => Path.Combine(AppContext.BaseDirectory, "Fixtures", "safetensors-fixture.safetensors");

    // The script's known_state_dict, computed here from the same formulas.
    private static Dictionary<string, (ScalarType Type, long[] Shape, Array Values)> KnownStateDict() => new()
    {
        ["conv.weight"] = (ScalarType.Float32, [3, 3, 2, 2], Enumerable.Range(0, 36).Select(i => (float)(((i * 7) % 23 - 11) / 16.0)).ToArray()),
        ["norm.bias"] = (ScalarType.Float32, [5], Enumerable.Range(0, 5).Select(i => (float)(i * 0.1 - 0.2)).ToArray()),
        ["scale"] = (ScalarType.Float32, [], new[] { -1.5f }),
        ["table"] = (ScalarType.Float64, [3, 4], Enumerable.Range(0, 12).Select(i => (i - 5) / 3.0).ToArray()),
        ["steps"] = (ScalarType.Int64, [2], new[] { -3L, (1L << 40) + 5 }),
    };

    [Fact]
    public void Reads_every_value_of_the_numpy_written_fixture()
    {
        var read = StateDictFiles.ReadSafetensors(Fixture);
        var known = KnownStateDict();
        Assert.Equal(known.Keys.Order(), read.Keys.Order()); // __metadata__ is not a tensor
        foreach (var (name, (type, shape, values)) in known)
        {
            var t = read[name];
            Assert.Equal(type, t.dtype);
            Assert.Equal(shape, t.shape);
            switch (values)
            {
                case float[] f: Assert.Equal(f, t.data<float>().ToArray()); break;
                case double[] d: Assert.Equal(d, t.data<double>().ToArray()); break;
                case long[] l: Assert.Equal(l, t.data<long>().ToArray()); break;
            }
        }
        foreach (var t in read.Values) t.Dispose();
    }

    private static RunConfig TinyConfig(int hidden = 32)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.Data.Spec = "toy:rings?n=1000";
        cfg.Model.Hidden = hidden; cfg.Model.Blocks = 1;
        cfg.Train.Steps = 6; cfg.Train.BatchSize = 16; cfg.Train.LogEvery = 1;
        return cfg;
    }

    private static void AssertSameTensors(IEnumerable<KeyValuePair<string, Tensor>> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        foreach (var (name, e) in expected)
        {
            Assert.True(actual.ContainsKey(name), $"missing {name}");
            Assert.Equal(e.shape, actual[name].shape);
            Assert.True(e.to_type(ScalarType.Float32).equal(actual[name].to_type(ScalarType.Float32)).all().item<bool>(), name);
        }
    }

    [Fact]
    public void Export_writes_the_ema_weights_as_float32_safetensors_with_the_config_and_init_weights_starts_a_run_from_them()
    {
        var run = TestUtil.TempDir("export-run");
        var cfg = TinyConfig();
        var outDir = Path.Combine(TestUtil.TempDir("export-out"), "exported");
        using (var t = new Trainer(cfg, run, resume: false))
        {
            t.Run();
            var r = SafetensorsWeights.Export(run, outDir);
            Assert.Equal(6, r.Step);
            var read = StateDictFiles.ReadSafetensors(r.ModelPath);
            var ema = t.EmaModel.state_dict();
            Assert.Equal(ema.Keys, r.Tensors.Select(x => x.Name));
            Assert.Equal(ema.Count, read.Count);
            Assert.All(read.Values, v => Assert.Equal(ScalarType.Float32, v.dtype));
            AssertSameTensors(ema, read);
            // The EMA, not the raw weights (after 6 warm-up updates they differ).
            Assert.Contains(t.Model.state_dict(), kv => !kv.Value.equal(read[kv.Key]).all().item<bool>());
            foreach (var v in read.Values) v.Dispose();
            Assert.Equal(ConfigLoader.ToJson(cfg), File.ReadAllText(r.ConfigPath));
        }

        // The layout without PyBridge: header length in bytes, F32 entries whose offsets tile the data exactly.
        var bytes = File.ReadAllBytes(Path.Combine(outDir, SafetensorsWeights.ModelFile));
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        long end = 0;
        foreach (var e in header.RootElement.EnumerateObject().OrderBy(e => e.Value.GetProperty("data_offsets")[0].GetInt64()))
        {
            Assert.Equal("F32", e.Value.GetProperty("dtype").GetString());
            long count = e.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, s) => a * s.GetInt64());
            Assert.Equal(end, e.Value.GetProperty("data_offsets")[0].GetInt64());
            end = e.Value.GetProperty("data_offsets")[1].GetInt64();
            Assert.Equal(4 * count, end - e.Value.GetProperty("data_offsets")[0].GetInt64());
        }
        Assert.Equal(bytes.Length, 8 + n + end);

        // A new run (another seed) starts with model and EMA equal to the file, and records where they came from.
        string file = Path.Combine(outDir, SafetensorsWeights.ModelFile);
        var next = TinyConfig();
        next.Train.Seed = 7;
        next.Train.InitWeights = file;
        var run2 = TestUtil.TempDir("init-run");
        using (var t2 = new Trainer(next, run2, resume: false))
        {
            var read = StateDictFiles.ReadSafetensors(file);
            AssertSameTensors(t2.Model.state_dict(), read);
            AssertSameTensors(t2.EmaModel.state_dict(), read);
            foreach (var v in read.Values) v.Dispose();
            t2.Run();
        }
        Assert.Equal(file, Checkpoint.ReadHeader(Path.Combine(run2, Checkpoint.FileName)).RunConfig("x").Train.InitWeights);

        // A resume continues from the checkpoint and does not read the file again (it may be gone).
        var moved = file + ".moved";
        File.Move(file, moved);
        var resumed = TrainingRun.ResumeConfig(run2, 8, null);
        using (var t3 = new Trainer(resumed, run2, resume: true)) t3.Run();
        File.Move(moved, file);
    }

    [Fact]
    public void Init_weights_that_do_not_fit_are_one_line_errors_naming_the_file_and_tensor()
    {
        var dir = TestUtil.TempDir("init-bad");
        using var net = Models.ModelFactory.Create(TinyConfig(), [2]);
        var named = SafetensorsWeights.Float32StateDict(net);
        var good = Path.Combine(dir, "good.safetensors");
        StateDictFiles.WriteSafetensors(good, named);

        string Error(RunConfig cfg, string file)
        {
            cfg.Train.InitWeights = file;
            var e = Assert.Throws<UserError>(() => new Trainer(cfg, TestUtil.TempDir("init-bad-run"), resume: false));
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains(file, e.Message);
            return e.Message;
        }

        Assert.Contains($"tensor '{named[0].Name}' has shape [32, 2], this run's network expects [16, 2]", Error(TinyConfig(hidden: 16), good));

        var missing = Path.Combine(dir, "missing.safetensors");
        StateDictFiles.WriteSafetensors(missing, named.Skip(1));
        Assert.Contains($"missing tensor '{named[0].Name}'", Error(TinyConfig(), missing));

        var extra = Path.Combine(dir, "extra.safetensors");
        using var surplus = zeros(3);
        StateDictFiles.WriteSafetensors(extra, named.Append(("head.weight", surplus)));
        Assert.Contains("unexpected tensor 'head.weight'", Error(TinyConfig(), extra));

        var junk = Path.Combine(dir, "junk.safetensors");
        File.WriteAllText(junk, "not safetensors");
        Assert.Contains("not a readable safetensors file", Error(TinyConfig(), junk));
        Assert.Contains("file not found", Error(TinyConfig(), Path.Combine(dir, "none.safetensors")));
        foreach (var (_, v) in named) v.Dispose();
    }
}
