/** The absolute path of the built console (index.html and assets/); it ends with a slash. */
export declare function consoleAssetsDir(): string;
