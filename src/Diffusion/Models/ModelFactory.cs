using Diffusion.Config;

namespace Diffusion.Models;

/// <summary>Builds the network a <see cref="ModelConfig"/> describes for examples of a given shape.</summary>
public static class ModelFactory
{
    public static DenoiserNetwork Create(ModelConfig cfg, long[] exampleShape)
    {
        cfg.Validate();
        if (cfg.Type == "unet")
        {
            if (exampleShape.Length != 3 || exampleShape[1] != exampleShape[2])
                throw new UserError($"model.type unet: expects square images C×H×W, but the data's examples have shape [{string.Join(", ", exampleShape)}]; use model.type=mlp for vectors");
            return new UNet((int)exampleShape[0], (int)exampleShape[1], cfg.Channels, cfg.ChannelMult, cfg.ResBlocks,
                            cfg.AttentionResolutions, cfg.HeadChannels, cfg.Dropout, cfg.NormGroups);
        }
        if (exampleShape.Length != 1)
            throw new UserError($"model.type mlp: expects vectors, but the data's examples have shape [{string.Join(", ", exampleShape)}]; use model.type=unet for images");
        return new MlpDenoiser((int)exampleShape[0], cfg.Hidden, cfg.Blocks, cfg.TimeEmbedDim, cfg.Dropout);
    }

    public static long ParameterCount(DenoiserNetwork net) => net.parameters().Sum(p => p.numel());
}
