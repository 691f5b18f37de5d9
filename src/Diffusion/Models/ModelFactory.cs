using Diffusion.Config;

namespace Diffusion.Models;

/// <summary>Builds the network a config describes for examples of a given shape (the config was validated when it was loaded).</summary>
public static class ModelFactory
{
    /// <summary>
    /// The network of a run: the UNet or MLP of <c>model</c>, wrapped for soft mixture denoising when <c>smd.enabled</c>,
    /// computing in the precision <c>train.precision</c> resolves to.
    /// </summary>
    public static DenoiserNetwork Create(RunConfig cfg, long[] exampleShape)
    {
        var net = CreateFloat32(cfg, exampleShape);
        net.Precision = Precisions.Resolve(cfg.Train.Precision, cfg.Model.Type);
        return net;
    }

    private static DenoiserNetwork CreateFloat32(RunConfig cfg, long[] exampleShape)
    {
        if (!cfg.Smd.Enabled) return Create(cfg.Model, exampleShape);
        var m = cfg.Model;
        CheckShape(m, exampleShape);
        int d = cfg.Smd.LatentDimFor(m.Type);
        if (m.Type == "unet")
        {
            int c = (int)exampleShape[0], side = (int)exampleShape[1];
            // g_ξ: a small UNet on concat[x_t, η] giving the per-pixel latent map.
            var latent = new UNet(2 * c, side, channels: 32, channelMult: [1, 2], resBlocks: 1, attentionResolutions: [],
                                  headChannels: 32, dropout: 0.0, normGroups: 8, outChannels: d);
            var backbone = new UNet(c, side, m.Channels, m.ChannelMult, m.ResBlocks, m.AttentionResolutions, m.HeadChannels,
                                    m.Dropout, m.NormGroups, hyperLatentDim: d, hyperLayers: cfg.Smd.HyperLayers, classes: m.NumClasses);
            return new SmdNetwork(latent, backbone);
        }
        int dim = (int)exampleShape[0];
        if (cfg.Smd.HyperLayers > m.Blocks + 1)
            throw new ConfigException($"smd.hyper-layers: the MLP has {m.Blocks + 1} places for hyper layers (model.blocks + 1), got {cfg.Smd.HyperLayers}");
        // g_ξ: an MLP on concat[x_t, η] giving the latent vector.
        var latentMlp = new MlpDenoiser(2 * dim, hidden: Math.Max(32, m.Hidden / 2), blockCount: 2, timeEmbedDim: m.TimeEmbedDim, outDim: d);
        var backboneMlp = new MlpDenoiser(dim, m.Hidden, m.Blocks, m.TimeEmbedDim, m.Dropout, hyperLatentDim: d, hyperLayers: cfg.Smd.HyperLayers, classes: m.NumClasses,
                                           inputEmbedDim: m.InputEmbedDim, inputEmbedScale: m.EffectiveInputEmbedScale);
        return new SmdNetwork(latentMlp, backboneMlp);
    }

    public static DenoiserNetwork Create(ModelConfig cfg, long[] exampleShape)
    {
        CheckShape(cfg, exampleShape);
        if (cfg.Type == "unet")
            return new UNet((int)exampleShape[0], (int)exampleShape[1], cfg.Channels, cfg.ChannelMult, cfg.ResBlocks,
                            cfg.AttentionResolutions, cfg.HeadChannels, cfg.Dropout, cfg.NormGroups, classes: cfg.NumClasses);
        return new MlpDenoiser((int)exampleShape[0], cfg.Hidden, cfg.Blocks, cfg.TimeEmbedDim, cfg.Dropout, classes: cfg.NumClasses,
                               inputEmbedDim: cfg.InputEmbedDim, inputEmbedScale: cfg.EffectiveInputEmbedScale);
    }

    private static void CheckShape(ModelConfig cfg, long[] exampleShape)
    {
        if (cfg.Type == "unet" && (exampleShape.Length != 3 || exampleShape[1] != exampleShape[2]))
            throw new UserError($"model.type unet: expects square images C×H×W, but the data's examples have shape [{string.Join(", ", exampleShape)}]; use model.type=mlp for vectors");
        if (cfg.Type == "mlp" && exampleShape.Length != 1)
            throw new UserError($"model.type mlp: expects vectors, but the data's examples have shape [{string.Join(", ", exampleShape)}]; use model.type=unet for images");
    }

    public static long ParameterCount(DenoiserNetwork net) => net.parameters().Sum(p => p.numel());
}
