using System.Reflection;

[assembly: AssemblyTitle("Syros.Client")]
[assembly: AssemblyDescription("The Syros client for .NET over the C ABI of the Rust client core")]
[assembly: AssemblyVersion("0.1.0.0")]
[assembly: AssemblyFileVersion("0.1.0.0")]
[assembly: AssemblyInformationalVersion("0.1.0")]
