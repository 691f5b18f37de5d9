using Diffusion.Config;

namespace Diffusion.Tests;

public class ConfigTests
{
    [Fact]
    public void Toml_and_json_give_the_same_config()
    {
        var dir = TestUtil.TempDir("cfg");
        File.WriteAllText(Path.Combine(dir, "a.toml"), """
            # comment
            [data]
            spec = "toy:moons"
            [model]
            type = "mlp"
            hidden = 64
            [train]
            lr = 2e-4
            batch-size = 32
            [sample]
            clip-denoised = true
            """);
        File.WriteAllText(Path.Combine(dir, "a.json"), """
            { "data": { "spec": "toy:moons" }, // comment
              "model": { "type": "mlp", "hidden": 64 },
              "train": { "lr": 0.0002, "batch-size": 32 },
              "sample": { "clip-denoised": true } }
            """);
        var a = ConfigLoader.FromTree(ConfigLoader.FileTree(Path.Combine(dir, "a.toml")));
        var b = ConfigLoader.FromTree(ConfigLoader.FileTree(Path.Combine(dir, "a.json")));
        Assert.Equal(ConfigLoader.ToJson(a), ConfigLoader.ToJson(b));
        Assert.Equal(64, a.Model.Hidden);
        Assert.Equal(2e-4, a.Train.Lr);
        Assert.True(a.Sample.ClipDenoised);
        Assert.Equal(1000, a.Schedule.Timesteps); // default kept
        // The saved JSON reads back to the same config.
        Assert.Equal(ConfigLoader.ToJson(a), ConfigLoader.ToJson(ConfigLoader.FromJson(ConfigLoader.ToJson(a), "saved")));
    }

    [Fact]
    public void Set_overrides_numbers_lists_and_strings()
    {
        var tree = ConfigLoader.EmbeddedTree("image28");
        ConfigLoader.ApplySet(tree, "model.channel-mult=[1,2,4]");
        ConfigLoader.ApplySet(tree, "train.lr=3e-4");
        ConfigLoader.ApplySet(tree, "data.spec=mnist");
        ConfigLoader.ApplySet(tree, "data.horizontal-flip=true");
        ConfigLoader.ApplySet(tree, "sample.sampler=\"ddpm\"");
        var cfg = ConfigLoader.FromTree(tree);
        Assert.Equal(new[] { 1, 2, 4 }, cfg.Model.ChannelMult);
        Assert.Equal(3e-4, cfg.Train.Lr);
        Assert.Equal("mnist", cfg.Data.Spec);
        Assert.True(cfg.Data.HorizontalFlip);
        Assert.Equal("ddpm", cfg.Sample.Sampler);
    }

    [Theory]
    [InlineData("model.nope=1", "unknown key 'model.nope'")]
    [InlineData("nope.x=1", "unknown key 'nope'")]
    [InlineData("train.lr=fast", "wrong type of value for key 'train.lr'")]
    [InlineData("train.lr=-1", "train.lr: expected a positive number")]
    [InlineData("model.type=transformer", "model.type: expected unet or mlp")]
    [InlineData("schedule.name=exp", "schedule.name: expected one of")]
    [InlineData("sample.spacing=log", "sample.spacing: expected one of")]
    [InlineData("sample.sampler=dpm", "sample.sampler: expected one of ddpm, ddim, dpm-solver")]
    [InlineData("sample.order=4", "sample.order: expected 1, 2 or 3")]
    [InlineData("sample.skip=uniform", "sample.skip: expected one of time-uniform, logSNR, time-quadratic")]
    [InlineData("sample.algorithm=dpm++", "sample.algorithm: expected dpmsolver or dpmsolver++")]
    [InlineData("sample.eps-scale-b=0", "sample.eps-scale-b: expected a positive number")]
    [InlineData("model.input-embed-dim=5", "model.input-embed-dim: expected 0 (off) or an even number")]
    [InlineData("model.input-embed-scale=0", "model.input-embed-scale: expected a positive number")]
    [InlineData("model.conditional=true", "model.conditional is not a setting; a model is class-conditional when model.num-classes is positive")]
    [InlineData("model.conditional=1", "model.conditional is not a setting")]
    public void Bad_keys_and_values_are_one_line_errors_naming_the_key(string set, string expected)
    {
        var tree = ConfigLoader.EmbeddedTree("toy");
        ConfigLoader.ApplySet(tree, set);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.FromTree(tree, "test"));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    /// <summary>
    /// model.conditional follows model.num-classes and is not written; configs and checkpoints written before it was
    /// dropped hold it, and still load when it agrees with model.num-classes.
    /// </summary>
    [Fact]
    public void The_derived_conditional_flag_is_not_written_and_old_files_with_it_load()
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        Assert.False(ConfigLoader.ToTree(cfg)["model"]!.AsObject().ContainsKey("conditional"));
        foreach (var (classes, flag) in new[] { (0, false), (3, true) })
        {
            var old = ConfigLoader.ToTree(cfg);
            old["model"]!["num-classes"] = classes;
            old["model"]!["conditional"] = flag;
            var loaded = ConfigLoader.FromJson(old.ToJsonString(), "old config.json");
            Assert.Equal(classes, loaded.Model.NumClasses);
            Assert.Equal(flag, loaded.Model.Conditional);
            old["model"]!["conditional"] = !flag;
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.FromJson(old.ToJsonString(), "old config.json"));
            Assert.StartsWith("old config.json: model.conditional is not a setting", e.Message);
        }
    }

    [Fact]
    public void Built_in_configs_are_the_files_in_configs_and_all_validate()
    {
        var names = ConfigLoader.EmbeddedNames;
        Assert.Contains("demo", names);
        Assert.Contains("toy", names);
        Assert.Contains("image28", names);
        Assert.Contains("image32", names);
        foreach (var n in names) ConfigLoader.FromTree(ConfigLoader.EmbeddedTree(n), n);
        Assert.Contains("no built-in config named 'nope'", Assert.Throws<ConfigException>(() => ConfigLoader.EmbeddedTree("nope")).Message);
    }

    [Fact]
    public void Malformed_files_are_reported_with_their_name()
    {
        var dir = TestUtil.TempDir("cfg-bad");
        File.WriteAllText(Path.Combine(dir, "bad.toml"), "[data\nspec = 1");
        Assert.Contains("bad.toml: not valid TOML", Assert.Throws<ConfigException>(() => ConfigLoader.FileTree(Path.Combine(dir, "bad.toml"))).Message);
        File.WriteAllText(Path.Combine(dir, "bad.json"), "{ \"data\": ");
        Assert.Contains("bad.json: not valid JSON", Assert.Throws<ConfigException>(() => ConfigLoader.FileTree(Path.Combine(dir, "bad.json"))).Message);
        Assert.Contains("file not found", Assert.Throws<ConfigException>(() => ConfigLoader.FileTree(Path.Combine(dir, "none.toml"))).Message);
        File.WriteAllText(Path.Combine(dir, "x.yaml"), "a: 1");
        Assert.Contains("expected a .json or .toml file", Assert.Throws<ConfigException>(() => ConfigLoader.FileTree(Path.Combine(dir, "x.yaml"))).Message);
    }

    [Fact]
    public void A_schedule_config_that_cannot_be_built_is_refused_with_the_validation_message()
    {
        // Loaded configs are validated once, by the loader; Build only refuses what it cannot build.
        Assert.Equal(1000, new ScheduleConfig { Name = "cosine" }.Build().T);
        Assert.StartsWith("schedule.name: expected one of linear", Assert.Throws<ConfigException>(() => new ScheduleConfig { Name = "cubic" }.Build()).Message);
        Assert.StartsWith("schedule.betas: a custom schedule needs", Assert.Throws<ConfigException>(() => new ScheduleConfig { Name = "custom" }.Build()).Message);
        var tree = ConfigLoader.EmbeddedTree("toy");
        ConfigLoader.ApplySet(tree, "schedule.name=cubic");
        Assert.Contains("schedule.name: expected one of", Assert.Throws<ConfigException>(() => ConfigLoader.FromTree(tree, "test")).Message);
    }
}
