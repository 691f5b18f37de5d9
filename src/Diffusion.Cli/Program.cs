return Diffusion.Cli.Entry.Run(args);
