using Platform.Cli;

return await Cli.RunAsync(args, CliHost.FromProcess());
